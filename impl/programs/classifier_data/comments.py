"""Talk-page comments with nsfw / toxic labels by construction, for what the real texts lack.

The real pool (tweets, reviews, fortunes) has few insults aimed at a person, which is what Jigsaw's toxic comments
are made of. The generator supplies them with their hard negatives: polite disagreement, blunt criticism with no
insult, clean uses of ambiguous words, neutral talk about sensitive topics. Each family comes in the same frames
on both sides of the label where it makes sense, so that the frame itself carries no signal.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

TOPICS = ["the Anarchism article", "the Albedo page", "this article", "the infobox", "the lead section",
          "the history section", "the Autism article", "the references", "the discography",
          "the Abraham Lincoln article", "this stub", "the map", "the citation for the 1998 census",
          "the page on Alabama", "the Achilles article", "the list of episodes", "the timeline", "the photo caption",
          "the population figures", "the spelling", "the category tags", "the see-also links"]
REASONS = ["the source is a self-published blog", "it was unsourced", "it duplicated the next paragraph",
           "the figure was out of date", "it did not follow the manual of style",
           "the citation did not support the claim", "the wording was not neutral", "the link was dead",
           "it was copied from another website", "it was original research",
           "consensus on the talk page was against it"]
INSULT_NOUNS = ["idiot", "moron", "loser", "jerk", "imbecile", "clown", "troll", "cretin", "halfwit", "dimwit",
                "dumbass", "jackass", "asshole", "bastard", "douchebag", "scumbag", "retard", "pig", "nitwit", "coward",
                "hypocrite", "liar", "twat", "wanker", "prick", "dipshit", "fool", "piece of garbage",
                "waste of space", "parasite", "bitch", "dickhead", "motherfucker", "cunt"]
INSULT_ADJECTIVES = ["stupid", "pathetic", "worthless", "ignorant", "arrogant", "brainless", "useless", "dumb",
                     "incompetent", "miserable", "fat", "ugly", "clueless", "spineless", "disgusting", "sad little",
                     "fucking", "goddamn", "bloody", "shitty", "retarded"]
OBSCENE_ADJECTIVES = {"fucking", "shitty", "goddamn"}
OBSCENE_NOUNS = {"asshole", "bitch", "dickhead", "motherfucker", "cunt", "twat", "wanker", "dipshit", "prick",
                 "douchebag"}
OBSCENE_PHRASES = ["fuck off", "fuck you", "go fuck yourself", "suck my dick", "suck my cock", "eat shit",
                   "kiss my ass", "shove it up your ass", "piss off", "f*ck off", "f**k you", "suck my c*ck",
                   "go screw yourself", "blow me"]
THREATS = ["I will find you and hurt you", "I hope you die", "you should kill yourself",
           "I'm going to beat the crap out of you", "watch your back", "I know where you live",
           "someone should shoot you", "I will make your life hell"]
SEXUAL = ["hot horny sluts want to fuck you tonight", "watch free porn videos of teen pussy",
          "huge cock and tits pics here", "she gave him a blowjob in the car and then they fucked",
          "send nudes babe, I want to see your tits", "my dick is so hard for you",
          "live cams with naked girls who love anal", "cum on my face"]
NEUTRAL_SENSITIVE = [
    "the article on prostitution needs better sources", "the section on sexual harassment law is out of date",
    "the rape statistics in the table come from the 2011 report",
    "the article about the Nazi party uses primary sources",
    "the breast cancer article should cite the WHO figures", "the list of ethnic slurs article is protected",
    "the page on sex education was merged", "the drug overdose figures were wrong", "the genocide article needs a map",
    "the article on homosexuality in ancient Greece is well written", "the term 'bitch' here refers to a female dog",
    "a cock is an adult male chicken", "Dick Cheney served as vice president", "kill the process with SIGTERM",
    "the suspect was charged with murder", "the band's album was called 'Damn'", "the hell scene in Dante's Inferno",
    "the Moby-Dick chapter summaries", "the screw thread standard", "the Ass (donkey) article"]
CRITICISM = ["your edit was wrong and I have reverted it", "this is simply not true and you know it",
             "your sources are weak", "I strongly disagree with this change", "this paragraph is badly written",
             "please stop adding unsourced claims", "that argument makes no sense to me", "you have misread the source",
             "this is the third time you have reverted without discussion", "I find this edit unhelpful",
             "this is a terrible article", "frankly this section is a mess"]
POLITE = ["thanks for fixing the typo", "I reverted your edit because {r}", "could you add a citation for {t}?",
          "I have moved {t} to a subsection", "please see the talk page before changing {t}",
          "good catch on {t}, thank you", "I think {t} could be shortened",
          "welcome to Wikipedia! your edit to {t} was helpful", "I restored {t} because {r}",
          "can we discuss {t} here first?", "the figure in {t} matches the 2010 census",
          "I agree with the proposed merge of {t}", "nice work on {t}"]
SIGNATURES = ["", "", "", " -- Crunch Captain.", " ~~~~", " (talk)", " Regards.", " Cheers!", " - anon"]


@dataclass(frozen=True)
class Comment:
    family: str  # "insult", "criticism", "obscene", "threat", "sexual", "sensitive", "polite"
    text: str
    nsfw: bool
    toxic: bool


def capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def vary_case(text: str, rng: random.Random) -> str:
    """Commenters shout (12%) and skip capitals (18%)."""
    r = rng.random()
    return text.upper() if r < 0.12 else text.lower() if r < 0.3 else text


def generate(per_family: int = 400, seed: int = 0) -> list[Comment]:
    """``per_family`` comments of each of the seven families."""
    rng = random.Random(seed)

    def topic() -> str:
        return rng.choice(TOPICS)

    def polite() -> str:
        return capitalize(rng.choice(POLITE).format(t=topic(), r=rng.choice(REASONS)))

    comments = []

    def add(family: str, text: str, nsfw: bool, toxic: bool) -> None:
        comments.append(Comment(family, vary_case(text + rng.choice(SIGNATURES), rng), nsfw, toxic))

    for _ in range(per_family):
        adjective, noun = rng.choice(INSULT_ADJECTIVES), rng.choice(INSULT_NOUNS)
        obscene = adjective in OBSCENE_ADJECTIVES or noun in OBSCENE_NOUNS
        a = "an" if adjective[0] in "aeiou" else "a"
        # A directed insult, alone or inside an otherwise ordinary comment.
        insult = rng.choice([f"You are {a} {adjective} {noun}.", f"What {a} {adjective} {noun}.",
                             f"Shut up, you {adjective} {noun}.", f"Why did that {noun} revert my edit to {topic()}?",
                             f"Only {a} {adjective} {noun} would write {topic()} like this.",
                             f"None of you {noun}s have any right to tell me about vandalism.",
                             f"Listen {noun}, leave {topic()} alone.",
                             f"The {noun} who wrote {topic()} should be banned.",
                             f"You {adjective} {noun}!!!"])
        add("insult", rng.choice([insult, polite() + " " + insult, insult + " " + polite()]), obscene, True)
        # The same frames with a criticism instead of an insult.
        criticism = capitalize(rng.choice(CRITICISM))
        add("criticism", rng.choice([criticism + ".", polite() + " " + criticism + ".",
                                     criticism + " about " + topic() + "."]), False, False)
        phrase = rng.choice(OBSCENE_PHRASES)
        add("obscene", rng.choice([capitalize(phrase) + "!", f"{capitalize(phrase)}, {noun}.",
                                   f"{polite()} Oh and {phrase}.", f"Wikipedia editors can {phrase}.",
                                   f"{capitalize(phrase)} and stop touching {topic()}."]), True, True)
        threat = rng.choice(THREATS)
        add("threat", rng.choice([capitalize(threat) + ".", f"If you revert {topic()} again {threat}.",
                                  f"{capitalize(threat)}, {noun}."]), noun in OBSCENE_NOUNS, True)
        # Sexual content: nsfw, and toxic as Jigsaw's raters mostly judged it.
        add("sexual", capitalize(rng.choice(SEXUAL)) + rng.choice([".", "!!", " click here", ""]), True, True)
        sensitive = rng.choice(NEUTRAL_SENSITIVE)
        add("sensitive", rng.choice([capitalize(sensitive) + ".", polite() + " Also, " + sensitive + ".",
                                     "Umm, " + sensitive + "."]), False, False)
        add("polite", polite() + rng.choice(["", " " + polite()]), False, False)
    return comments


@dataclass(frozen=True)
class Injected:
    group: str  # the real document's group: it stays on its side of the split
    text: str
    nsfw: bool
    toxic: bool


def inject(texts: list[tuple[str, str]], count: int, seed: int = 1) -> list[Injected]:
    """``count`` real informal texts, given as (group, text), each with a generated remark added at a random side:
    half an insult, obscenity or threat (toxic), half a criticism or polite remark (a control, so that the
    concatenation itself carries no signal)."""
    rng = random.Random(seed)
    generated = generate(max(50, count // 4), seed + 7)
    bad = [c for c in generated if c.family in ("insult", "obscene", "threat")]
    good = [c for c in generated if c.family in ("criticism", "polite", "sensitive")]
    short_insults = [rng.choice(INSULT_NOUNS) for _ in range(count)]
    out = []
    for i in range(count):
        group, text = rng.choice(texts)
        if rng.random() < 0.5:
            if rng.random() < 0.35:  # a bare insult word, the commonest toxic comment there is
                word = short_insults[i]
                remark = rng.choice([f"{word}!", f"you {word}.", f"what a {word}.",
                                     f"@anonymous you {rng.choice(INSULT_ADJECTIVES)} {word}", f"shut up {word}"])
                nsfw = word in OBSCENE_NOUNS or any(a in remark for a in OBSCENE_ADJECTIVES)
            else:
                chosen = rng.choice(bad)
                remark, nsfw = chosen.text, chosen.nsfw
            toxic = True
        else:
            chosen = rng.choice(good)
            remark, nsfw, toxic = chosen.text, chosen.nsfw, chosen.toxic
        out.append(Injected(group, f"{remark} {text}" if rng.random() < 0.5 else f"{text} {remark}", nsfw, toxic))
    return out
