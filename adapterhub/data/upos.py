"""Mapping the corpora's native part-of-speech tagsets onto the 17 Universal POS tags.

Tables follow the published conversions (Petrov, Das & McDonald's universal tagset and the
Universal Dependencies converters) for Penn Treebank (en, and the Penn-like tags of the Italian
WaCky sample), STTS (de, TIGER), EAGLES/Parole (es, FreeLing's short tags), the WOTAN/CGN-style
tags of the Dutch TwNC sample and the PKU tags of the People's Daily corpus (zh). Every tag that
occurs in the shipped corpora is listed explicitly; an unlisted tag maps to ``X`` and is counted
so that a test can insist there are none.
"""

from __future__ import annotations

UPOS = (
    "ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM",
    "PART", "PRON", "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X",
)  # fmt: skip

_PUNCT = {",", ".", ":", "``", "''", '"', "(", ")", "-LRB-", "-RRB-", "-", "--", ";", "!", "?"}

PENN = {
    **dict.fromkeys(["NN", "NNS"], "NOUN"),
    **dict.fromkeys(["NNP", "NNPS"], "PROPN"),
    **dict.fromkeys(["DT", "PDT", "WDT"], "DET"),
    **dict.fromkeys(["JJ", "JJR", "JJS"], "ADJ"),
    **dict.fromkeys(["RB", "RBR", "RBS", "WRB"], "ADV"),
    **dict.fromkeys(["PRP", "PRP$", "WP", "WP$", "EX"], "PRON"),
    **dict.fromkeys(["VB", "VBD", "VBG", "VBN", "VBP", "VBZ"], "VERB"),
    **dict.fromkeys(["$", "#", "SYM"], "SYM"),
    **dict.fromkeys(["FW", "LS"], "X"),
    **dict.fromkeys(_PUNCT, "PUNCT"),
    "IN": "ADP",
    "RP": "ADP",
    "TO": "PART",
    "POS": "PART",
    "CC": "CCONJ",
    "CD": "NUM",
    "MD": "AUX",
    "UH": "INTJ",
}

# The Italian WaCky sample uses a reduced Penn-like set: FC is clause punctuation (: ; -),
# "(" any bracket or quote, X symbols such as = + and degrees; one token carries the stray tag 858.
ITALIAN = {**PENN, "FC": "PUNCT", "X": "SYM", "858": "X"}

STTS = {
    **dict.fromkeys(["ADJA", "ADJD"], "ADJ"),
    **dict.fromkeys(["APPR", "APPRART", "APPO", "APZR"], "ADP"),
    **dict.fromkeys(["KOUI", "KOUS"], "SCONJ"),
    **dict.fromkeys(["KON", "KOKOM"], "CCONJ"),
    **dict.fromkeys(["PDS", "PIS", "PPER", "PRF", "PPOSS", "PRELS", "PWS"], "PRON"),
    **dict.fromkeys(["PDAT", "PIAT", "PIDAT", "PPOSAT", "PRELAT", "PWAT", "ART"], "DET"),
    **dict.fromkeys(["PWAV", "PROAV", "PAV", "ADV"], "ADV"),
    **dict.fromkeys(["PTKZU", "PTKNEG", "PTKVZ", "PTKA"], "PART"),
    **dict.fromkeys(["PTKANT", "ITJ"], "INTJ"),
    **dict.fromkeys(["VVFIN", "VVIMP", "VVINF", "VVIZU", "VVPP"], "VERB"),
    **dict.fromkeys(["VAFIN", "VAIMP", "VAINF", "VAPP", "VMFIN", "VMINF", "VMPP"], "AUX"),
    **dict.fromkeys(["FM", "TRUNC", "XY"], "X"),
    # TIGER's $, $. $( appear without the dollar in this sample.
    **dict.fromkeys(["$,", "$.", "$(", *_PUNCT], "PUNCT"),
    "NN": "NOUN",
    "NE": "PROPN",
    "CARD": "NUM",
}

EAGLES = {
    **dict.fromkeys(["AQ", "AO"], "ADJ"),
    **dict.fromkeys(["DA", "DD", "DI", "DP", "DT", "DE", "DN"], "DET"),
    **dict.fromkeys(["NC", "NCS", "NCP", "NCN"], "NOUN"),
    **dict.fromkeys(["P0", "PP", "PR", "PI", "PD", "PX", "PT", "PE", "PN"], "PRON"),
    **dict.fromkeys(["RG", "RN"], "ADV"),
    **dict.fromkeys(["Z", "Zd", "Zm", "Zp", "W"], "NUM"),
    "Zu": "NOUN",  # units of measure: km, h, kg
    "NP": "PROPN",
    "CC": "CCONJ",
    "CS": "SCONJ",
    "SP": "ADP",
    "I": "INTJ",
}


def eagles(tag: str) -> str:
    if tag.startswith("F"):
        return "PUNCT"
    if tag.startswith(("VA", "VS")):
        return "AUX"
    if tag.startswith("VM"):
        return "VERB"
    return EAGLES.get(tag, "")


def wotan(tag: str) -> str:
    """Dutch TwNC tags look like ``V(hulp,ott,1of2of3,mv)``: head category plus features."""
    head, _, rest = tag.partition("(")
    features = rest.rstrip(")").split(",") if rest else []
    first = features[0] if features else ""
    if head == "N":
        return "PROPN" if first == "eigen" else "NOUN"
    if head == "V":
        return "AUX" if first in ("hulp", "hulpofkopp") else "VERB"
    if head == "Adv":
        return "ADP" if first in ("deelv", "deeladv") else "ADV"  # separable verb particles
    if head == "Pron":
        return "DET" if "attr" in features else "PRON"
    if head == "Conj":
        return "SCONJ" if first == "onder" else "CCONJ"
    return {
        "Adj": "ADJ",
        "Art": "DET",
        "Prep": "ADP",
        "Punc": "PUNCT",
        "Num": "NUM",
        "Int": "INTJ",
        "Misc": "X",
    }.get(head, "")


PKU = {
    **dict.fromkeys(["n", "Ng", "t", "Tg", "s", "f", "q", "an", "vn", "na"], "NOUN"),
    **dict.fromkeys(["nr", "ns", "nt", "nz", "nx", "j"], "PROPN"),
    **dict.fromkeys(["v", "Vg", "vd", "vvn"], "VERB"),
    **dict.fromkeys(["a", "Ag", "b", "Bg", "z"], "ADJ"),
    **dict.fromkeys(["d", "Dg", "ad"], "ADV"),
    **dict.fromkeys(["m", "Mg"], "NUM"),
    **dict.fromkeys(["r", "Rg"], "PRON"),
    **dict.fromkeys(["u", "y", "Yg", "k", "h"], "PART"),
    **dict.fromkeys(["e", "o"], "INTJ"),
    **dict.fromkeys(["i", "l"], "X"),  # idioms and fixed phrases span several parts of speech
    "p": "ADP",
    "c": "CCONJ",
    "w": "PUNCT",
}

TAGSETS = {
    "penn": lambda tag: PENN.get(tag, ""),
    "italian-wacky": lambda tag: ITALIAN.get(tag, ""),
    "stts": lambda tag: STTS.get(tag, ""),
    "eagles": eagles,
    "wotan": wotan,
    "pku": lambda tag: PKU.get(tag, ""),
}


def to_upos(tag: str, tagset: str) -> str | None:
    """The Universal POS tag for a native tag, or None when the table has no entry. Ambiguous
    tags such as ``VBG|NN`` take their first reading."""
    mapped = TAGSETS[tagset](tag.split("|")[0])
    return mapped or None


# Penn and the Italian sample tag every verb VB*, auxiliaries included; UD tags auxiliaries AUX
# (as STTS, EAGLES and WOTAN already do), so without this English and Italian would disagree
# with German, Spanish and Dutch on every "is", "has been" and "è stato".
_BE = {"be", "is", "are", "was", "were", "been", "being", "am", "'s", "'re", "'m", "ai", "wo"}
_HAVE = {"have", "has", "had", "having", "'ve", "'d"}
_DO = {"do", "does", "did"}
_ESSERE = {
    "essere", "è", "e'", "sono", "sei", "siamo", "siete", "era", "erano", "ero", "eravamo",
    "fu", "furono", "fui", "sarà", "saranno", "sarebbe", "sarebbero", "sia", "siano", "fosse",
    "fossero", "stato", "stata", "stati", "state", "essendo",
}  # fmt: skip
_AVERE = {
    "avere", "ha", "hanno", "ho", "hai", "abbiamo", "avete", "aveva", "avevano", "avevo",
    "ebbe", "ebbero", "avrà", "avranno", "avrebbe", "avrebbero", "abbia", "abbiano", "avesse",
    "avessero", "avendo",
}  # fmt: skip
_PARTICIPLE_ENDINGS = ("ato", "ata", "ati", "ate", "uto", "uta", "uti", "ute", "ito", "ita",
                       "iti", "ite", "tto", "tta", "tti", "tte", "sto", "sta", "sti", "ste",
                       "so", "sa", "si", "se")  # fmt: skip


def _next_verb(tokens: list[str], native: list[str], start: int) -> int | None:
    """Index of the next verb after ``start``, skipping adverbs, negation and pronouns."""
    for index in range(start + 1, min(start + 5, len(tokens))):
        tag = native[index]
        if tag.startswith("VB"):
            return index
        if not (tag.startswith(("RB", "PRP")) or tokens[index].lower() in ("not", "n't", "non")):
            return None
    return None


def refine_with_words(tokens: list[str], native: list[str], upos: list[str], tagset: str) -> None:
    """Where Penn (en) and the Italian sample do not tell apart what UD does, decide from the
    word, in place: auxiliaries are AUX (every form of be/essere, since UD treats the copula as
    AUX too; have/avere before a participle; do before a bare verb) and English negation is
    PART."""
    if tagset not in ("penn", "italian-wacky"):
        return
    for index, token in enumerate(tokens):
        word = token.lower()
        if tagset == "penn" and native[index] == "RB" and word in ("not", "n't"):
            upos[index] = "PART"
        if upos[index] != "VERB":
            continue
        if tagset == "penn":
            if word in _BE:
                upos[index] = "AUX"
            elif word in _HAVE or word in _DO:
                after = _next_verb(tokens, native, index)
                wanted = "VBN" if word in _HAVE else "VB"
                if after is not None and native[after] == wanted:
                    upos[index] = "AUX"
        elif word in _ESSERE:
            upos[index] = "AUX"
        elif word in _AVERE:
            after = _next_verb(tokens, native, index)
            if after is not None and tokens[after].lower().endswith(_PARTICIPLE_ENDINGS):
                upos[index] = "AUX"
