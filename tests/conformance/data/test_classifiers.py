"""Conformance of the harmful-content and quality classifiers (spec/data.py classify_nsfw, classify_toxic_speech,
classify_quality; handout A4 §2.5, §2.7).

No classifier is right on every text, and the course leaves the model to the participant (the handout's Dolma Jigsaw
models for nsfw and toxic speech, one's own for quality). The course level therefore checks the interface (labels,
a score in [0, 1] for the label returned, text with newlines) and a few blatant cases on which the handout's
classifiers agree with any reader: an obscene, insult-laden comment; a polite technical comment; a paragraph of an
encyclopedia; a shop page of prices and keywords. The strict level adds Python floats and a dozen more clear cases
each way: a usable filter gets them all.
"""

from __future__ import annotations

import pytest

LABELS = {"classify_nsfw": ("nsfw", "non-nsfw"), "classify_toxic_speech": ("toxic", "non-toxic"),
          "classify_quality": ("wiki", "cc")}
FASTTEXT_EXCESS = 1e-4  # fastText's probabilities can exceed 1 by ~1e-5 (it adds 1e-5 before taking the log)

OBSCENE_INSULTS = ("FUCK YOU, you stupid piece of shit.\nGo suck a dick, you worthless fucking asshole. "
                   "Nobody on this talk page wants your bullshit edits, you fucking moron.")
POLITE_TECHNICAL = ("Thanks for the review! I rebased the branch on main and the failing test now passes.\n"
                    "Could you take another look at the error handling in the parser when you have time?")
ENCYCLOPEDIC = (
    "The Danube is the second-longest river in Europe, after the Volga. It rises in the Black Forest in Germany and "
    "flows for some 2,850 kilometres through Central and Southeastern Europe before emptying into the Black Sea "
    "through a delta in Romania and Ukraine.\nIn antiquity the river formed a long stretch of the northern frontier "
    "of the Roman Empire, and fortifications were built along its banks. Today it passes through ten countries, more "
    "than any other river in the world, and four capital cities lie on its course: Vienna, Bratislava, Budapest and "
    "Belgrade. The river has long been an important route for trade and transport, and since the opening of the "
    "Rhine-Main-Danube Canal in 1992 it has been part of a waterway linking the North Sea to the Black Sea.")
SHOP_PAGE = ("Home | Shop | Deals | Cart (0) | Login\nBEST CHEAP Wireless Earbuds 2024 - Buy Wireless Earbuds Online "
             "FREE SHIPPING\nWireless Earbuds $19.99 $39.99 Add to cart\nBluetooth Headphones $24.99 Add to cart\n"
             "★★★★★ (1,203) best earbuds cheap earbuds wireless earbuds sale buy now\nSubscribe and get 10% off! "
             "Enter your email\n© 2023 MegaDeals. All rights reserved. Privacy Policy | Terms of Use")

BLATANT = {  # component -> [(case id, text, label)]
    "classify_nsfw": [("obscene-insults", OBSCENE_INSULTS, "nsfw"), ("polite-technical", POLITE_TECHNICAL, "non-nsfw")],
    "classify_toxic_speech": [("obscene-insults", OBSCENE_INSULTS, "toxic"),
                              ("polite-technical", POLITE_TECHNICAL, "non-toxic")],
    "classify_quality": [("encyclopedic", ENCYCLOPEDIC, "wiki"), ("shop-page", SHOP_PAGE, "cc")],
}


def classified(impl, component: str, text: str, strict: bool = False) -> tuple[str, float]:
    result = getattr(impl, component)(text)
    assert isinstance(result, tuple) and len(result) == 2, f"expected (label, score), got {result!r}"
    label, score = result
    assert label in LABELS[component], f"the label must be one of {LABELS[component]}, got {label!r}"
    high = 1 if strict else 1 + FASTTEXT_EXCESS
    assert 0 <= float(score) <= high, f"the score must lie in [0, 1], got {score}"
    if strict:
        assert type(score) is float, f"the score must be a Python float, got {type(score).__name__}"
    return label, float(score)


def blatant_cases(component: str):
    return [pytest.param(component, text, label, id=f"{component}-{case}", marks=pytest.mark.component(component))
            for case, text, label in BLATANT[component]]


@pytest.mark.parametrize("component, text, label", [case for component in BLATANT for case in blatant_cases(component)])
def test_blatant_case(impl, component, text, label):
    """A blatant case gets its label, with a score above 0.5 for it (the score is the confidence in the label
    returned); the text has newlines."""
    assert "\n" in text
    got, score = classified(impl, component, text)
    assert got == label, f"expected {label!r}, got {got!r} (score {score:.3f})"
    assert score > 0.5, f"{label!r} is the right label but its score is {score:.3f}: the score of the other label?"


ANY_TEXT = {"empty": "", "newlines": "\n\n", "one-word": "hello", "long": ENCYCLOPEDIC * 20,
            "non-ascii": "Über den Wolken muss die Freiheit wohl grenzenlos sein. 東京は日本の首都です。"}
    # the 1e-4 is loose: float32 rounding adds to fastText's 1e-5


@pytest.mark.parametrize("component", [pytest.param(c, marks=pytest.mark.component(c)) for c in LABELS])
@pytest.mark.parametrize("case", list(ANY_TEXT))
def test_any_text_gets_a_label(impl, component, case):
    """Any text, empty, blank or long, gets one of the two labels and a score in [0, 1]."""
    classified(impl, component, ANY_TEXT[case])


# --------------------------------------------------------------------------------------------- strict

INSULTS = ["You are an idiot and a liar. Nobody believes a word you say, you moron.",
           "Shut up, you pathetic loser. Get lost and never come back.",
           "What a stupid, ignorant bastard. People like you should be banned from here.",
           "You worthless piece of garbage, everyone on this page hates you."]
OBSCENITIES = ["Shut the fuck up, you dumb bitch.",
               "Go fuck yourself, asshole. I'll revert your shitty edit again.",
               "This is bullshit, and whoever wrote this crap is a fucking idiot.",
               "Suck my cock, you motherfucker.",
               "Hot horny girls want to fuck you tonight: free porn videos and pussy pics, click here."]
CLEAN = [("I have moved the history section below the infobox; please check that the citations still point to the "
         "right pages."),
         "The meeting has moved to Thursday at 3 pm. Please bring the quarterly figures and the draft budget.",
         "Could you add a source for the population figure? The 2010 census report would be ideal.",
         "I disagree with your edit: the census figure is better sourced than the blog post you cited.",
         "Happy birthday! I hope you have a wonderful day with your family.",
         "Welcome to the project, and thank you for your first contribution to the documentation."]
GOOD_PAGES = [
    ("Photosynthesis is the process by which green plants, algae and some bacteria convert light energy into chemical "
    "energy. In the light-dependent reactions, chlorophyll absorbs photons and water molecules are split, releasing "
    "oxygen. The energy captured is stored in ATP and NADPH, which the Calvin cycle then uses to fix carbon dioxide "
    "into sugars. The rate of photosynthesis depends on light intensity, temperature and carbon dioxide levels."),
    ("Marie Curie was a physicist and chemist who conducted pioneering research on radioactivity. She was the first "
    "woman to win a Nobel Prize, the first person to win the prize twice, and the only person to win it in two "
    "scientific fields. With her husband Pierre she discovered the elements polonium and radium, and after his death "
    "she continued their work at the University of Paris, where she became the first woman to hold a professorship."),
    ("Plate tectonics is the scientific theory that the Earth's lithosphere is divided into a number of large plates "
    "that move slowly over the mantle. Where plates meet, their relative motion determines the type of boundary: "
    "convergent, divergent or transform. Earthquakes, volcanic activity, mountain building and the formation of "
    "oceanic trenches occur mostly along these boundaries, which explains the distribution of such features."),
    ("The Industrial Revolution was the transition to new manufacturing processes in Great Britain, continental Europe "
    "and the United States between about 1760 and 1840. It included the change from hand production to machines, "
    "new chemical and iron production processes, the increasing use of steam power and the rise of the factory "
    "system. Economic historians agree that it was one of the most important events in the history of humanity."),
    ("The module provides functions for reading and writing files in the comma-separated values format. The reader "
    "object iterates over the lines of a file and returns each row as a list of strings; the writer converts the "
    "user's data into delimited strings. Both accept a dialect, which groups the parameters that describe a "
    "particular format, such as the delimiter, the quoting character and the way line endings are handled."),
]
BAD_PAGES = [
    ("Sign in\nEmail or username\nPassword\nRemember me\nForgot your password?\nLog in\nDon't have an account? Sign "
    "up\nOr continue with Google"),
    ("404 Not Found\nOops! The page you are looking for does not exist.\nIt may have been moved or deleted.\nGo back "
    "to the homepage | Search our site\n© 2021 All rights reserved."),
    ("Subscribe to continue reading\nYou have reached your limit of free articles this month.\nAlready a subscriber? "
    "Sign in\nGet unlimited access for $1 a week. Cancel anytime.\nSubscribe now"),
    ("Best plumber in Dallas | plumber near me | cheap plumber Dallas\nLooking for the best plumber in Dallas? We are "
    "the plumber near me you can trust. Call now for cheap plumber Dallas! Affordable plumber available 24/7. Get a "
    "free quote today.\nCall us: (214) 555-0199"),
    ("Archives\n» March 2019 (12)\n» February 2019 (8)\n» January 2019 (15)\nCategories\n» Uncategorized (40)\n» "
    "Deals (12)\nTags: cheap, sale, best, buy\nPowered by WordPress"),
    ("lol cant believe its monday again ugh\nanyone watching the game tonight?? #bored\n@anonymous haha yes!!\n"
    "click here for FREE iphone giveaway >>> bit.ly/xyz"),
]
CLEAR = {  # component -> [(case id, text, label)]
    "classify_nsfw": [("obscene", text, "nsfw") for text in OBSCENITIES] + [("clean", text, "non-nsfw")
                                                                           for text in CLEAN],
    "classify_toxic_speech": [("insult", text, "toxic") for text in INSULTS + OBSCENITIES[:2]]
                             + [("clean", text, "non-toxic") for text in CLEAN],
    "classify_quality": [("good", text, "wiki") for text in GOOD_PAGES] + [("bad", text, "cc") for text in BAD_PAGES],
}


@pytest.mark.strict
@pytest.mark.parametrize("component, case, text, label", [
    pytest.param(component, case, text, label, id=f"{component}-{case}{i}", marks=pytest.mark.component(component))
    for component, cases in CLEAR.items() for i, (case, text, label) in enumerate(cases)])
def test_clear_case(impl, component, case, text, label):
    """Clear cases beyond the blatant ones get their label: a filter built on the classifier can use it."""
    got, score = classified(impl, component, text)
    assert got == label, f"expected {label!r}, got {got!r} (score {score:.3f})"


@pytest.mark.strict
@pytest.mark.parametrize("component", [pytest.param(c, marks=pytest.mark.component(c)) for c in LABELS])
def test_score_is_a_python_float(impl, component):
    """The score is a Python float in [0, 1] (fastText's numpy value, clipped)."""
    for _, text, _ in BLATANT[component]:
        classified(impl, component, text, strict=True)


@pytest.mark.strict
@pytest.mark.parametrize("component", [pytest.param(c, marks=pytest.mark.component(c)) for c in LABELS])
def test_newlines_are_spaces(impl, component):
    """A text gets the same label whether its lines are broken by newlines or joined by spaces."""
    for _, text, _ in BLATANT[component] + CLEAR[component]:
        with_newlines = classified(impl, component, text.replace(". ", ".\n"))[0]
        assert with_newlines == classified(impl, component, " ".join(text.split()))[0], text[:60]
