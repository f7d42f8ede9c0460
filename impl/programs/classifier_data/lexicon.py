"""Term lists for the silver harm labels, and the rule that turns them (with the teacher's score) into labels.

The lists were written by reading the 200 highest-weighted features of alt-profanity-check's linear SVM, the word
list of better-profanity and WordNet 3.0's usage domains obscenity, ethnic slur and disparagement. They are short
and explicit on purpose: they decide the silver labels, and a reader can check every entry.
"""

from __future__ import annotations

import re

# Obscene or sexual vocabulary that is vulgar in (almost) any context: nsfw.
OBSCENE = r"""f+u+c*k+\w* f\*+c*k\w* f\*\*\w* fck\w* fuk\w* fcuk\w* fvck\w* fux\w* motherf\w+ mofo
sh[i1]t\w* \w+shit\w* bullsh\w+ sh\*t\w* cunt\w* c\*nt\w* twat\w* wank\w* jerk\s?off jack\s?off
c[o0]cksuck\w* c\*ck\w* d\*ck\w* dickhead\w* \w+dick dicks p\*ssy pussy pussies asshole\w* a\*\*hole\w* arsehole\w*
bitch\w* b\*tch\w* whore\w* slut\w* cum cumshot\w* jizz\w* blowjob\w* handjob\w* porn\w* tits titties boobs
dildo\w* orgasm\w* horny cocks blow\s?job\w* suck\s+my\s+\w+ suck\s+(?:a|his)\s+(?:dick|cock)""".split()

# Sexual only sometimes (the cock crowed; Dick Cheney; a screwdriver; an ass is a donkey): nsfw only with the teacher.
AMBIGUOUS = r"cock dick prick ass arse balls screw\w* suck\w* nuts booty hump\w* sex\w* penis vagina anal".split()

INSULTS = r"""idiot\w* moron\w* stupid\w* dumb\w* imbecile\w* retard\w* loser\w* looser\w* jerk\w* scum\w* pathetic
douche\w* dumbass\w* jackass\w* dipshit\w* bastard\w* wanker\w* prick\w* twat\w* asshole\w* cretin\w* halfwit\w*
nitwit\w* dimwit\w* pig\w* pervert\w* psycho\w* freak\w* ugly worthless clown\w* hypocrit\w* liar\w* coward\w*
troll\w* bigot\w* nazi\w* filth\w* vermin parasite\w* fool\w* ignorant incompetent""".split()

SLURS = r"""nigg(?:a|as|az|er|ers|ah|uh|uz) n\*gg\w* fag fags faggot\w* fagot\w* f\*g dyke dykes chink chinks spic spics
spick spicks kike kikes wetbacks? gook gooks tranny trannies coon coons ragheads? towelheads? beaners? darkies?
sodomites?""".split()

THREATS = [r"\bkill (?:you|u|yourself|ya|him|her|them)\b",
           r"\b(?:i|we)(?:'ll| will| am going to| gonna) (?:find|hurt|beat|kill|destroy|shoot|stab|rape) (?:you|u)\b",
           r"\bhope (?:you|u) (?:die|rot|burn|get cancer)\b", r"\bgo (?:die|kill yourself|to hell)\b", r"\bkys\b",
           r"\bshut (?:the fuck |the hell )?up\b", r"\bfuck (?:off|you|u)\b", r"\bstfu\b", r"\bgtfo\b"]

# Insults aimed at someone: second person or a demonstrative before a person noun, exclamations, aggressive
# obscenities. Jigsaw's toxic label follows the target more than the words.
PERSON_NOUNS = r"""idiot\w* moron\w* loser\w* jerk\w* asshole\w* a\*\*hole\w* bitch\w* bastard\w* twat\w* wanker\w*
retard\w* imbecile\w* dumbass\w* jackass\w* douche\w* scumbag\w* prick\w* dickhead\w* cunt\w* motherf\w+ fucker\w*
fuckface\w* dipshit\w* cretin\w* halfwit\w* dimwit\w* nitwit\w* pervert\w* hypocrite\w* liar\w* coward\w* troll\w*
clown\w* pig\w* slut\w* whore\w* scum""".split()
_PERSON = "(?:" + "|".join(PERSON_NOUNS) + ")"
_UP_TO_3_WORDS = r"(?:\w+\s+){0,3}"
DIRECTED = [
    (rf"\b(?:you|u|ya|ur|your|you're|youre|yer)\b[\s,]+(?:are\s+|r\s+|is\s+)?(?:a\s+|an\s+|such\s+a\s+|the\s+)?"
    rf"{_UP_TO_3_WORDS}{_PERSON}(?![\w*])"),
    rf"\b(?:what|such)\s+(?:a|an)\s+{_UP_TO_3_WORDS}{_PERSON}(?![\w*])",
    rf"\b(?:that|this|those|these|the|that\s+stupid)\s+{_UP_TO_3_WORDS}{_PERSON}(?![\w*])",
    (r"\b(?:you|ya|u)\s+(?:are\s+)?(?:so\s+|such\s+|really\s+)?(?:stupid|dumb|pathetic|ignorant|worthless|retarded|ugly|"
    r"disgusting|useless|incompetent)\b"),
    (r"\b(?:shut\s+(?:the\s+)?(?:fuck|hell|f\*ck)\s+up|stfu|gtfo|fuck\s+(?:off|you|u|ya|yourself|them|him|her)|"
    r"go\s+fuck|"
    r"#?fuckyou\w*|full\s+of\s+(?:shit|crap)|cut\s+the\s+(?:bull)?shit|suck\s+my|kiss\s+my\s+ass|eat\s+shit)\b"),
    r"\b(?:are|r)\s+(?:you|u)\s+(?:fucking|fuckin|f\*cking)\b",
    rf"^\W*{_UP_TO_3_WORDS}{_PERSON}\W*$",
    rf"\b{_PERSON}s?\s*!+"]


def any_of(words: list[str]) -> re.Pattern:
    """Any of the terms as a whole word (an asterisk counts as part of a word: f*ck)."""
    return re.compile(r"(?<![\w*])(?:" + "|".join(words) + r")(?![\w*])", re.IGNORECASE)


PATTERNS = {"obscene": any_of(OBSCENE), "ambiguous": any_of(AMBIGUOUS), "insult": any_of(INSULTS),
            "slur": any_of(SLURS), "threat": re.compile("|".join(THREATS), re.IGNORECASE),
            "directed": re.compile("|".join(DIRECTED), re.IGNORECASE)}


def flags(text: str) -> dict[str, bool]:
    return {name: bool(pattern.search(text)) for name, pattern in PATTERNS.items()}


def silver_labels(text: str, teacher_score: float) -> tuple[bool, bool, bool]:
    """(nsfw, toxic, unsure) for one real text; ``teacher_score`` is the teacher's probability of offence.

    nsfw: an obscene term, or a context-dependent one where the teacher is sure (>= 0.9).
    toxic: a slur, or a threat or directed insult that the teacher finds offensive (>= 0.5).
    unsure: not toxic, yet the teacher is fairly sure (>= 0.8) and an obscenity or insult is there: profanity with no
    target, which Jigsaw's raters split on; the toxic task leaves these out of training and evaluation.
    """
    found = flags(text)
    nsfw = found["obscene"] or (found["ambiguous"] and teacher_score >= 0.9)
    toxic = found["slur"] or ((found["threat"] or found["directed"]) and teacher_score >= 0.5)
    unsure = not toxic and teacher_score >= 0.8 and (found["obscene"] or found["insult"])
    return nsfw, toxic, unsure
