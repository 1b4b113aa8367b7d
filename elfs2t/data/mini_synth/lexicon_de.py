"""German word lists with aligned English for the mini_synth S2TT grammar (present tense).

No weak masculine nouns (Junge, Bär, ...), no adjectives that drop a stem vowel when inflected
(dunkel, teuer), no separable verbs: every form below follows the regular rules in ``grammar.py``.
Nouns are ``Noun(singular, plural, gender, English singular, English plural)``; gender "m", "f", "n".
"""
from __future__ import annotations

from typing import NamedTuple


class Noun(NamedTuple):
    """A German noun with its grammatical gender and English translation."""

    de: str
    de_pl: str
    gender: str
    en: str
    en_pl: str


class Verb(NamedTuple):
    """A German present-tense verb (3rd singular, plural) with English (3rd singular, base)."""

    de: str
    de_pl: str
    en: str
    en_base: str


class Place(NamedTuple):
    """A location noun used in dative prepositional phrases."""

    de: str
    gender: str
    en: str


ANIMATE: tuple[Noun, ...] = (
    Noun("Mann", "Männer", "m", "man", "men"), Noun("Frau", "Frauen", "f", "woman", "women"),
    Noun("Kind", "Kinder", "n", "child", "children"), Noun("Hund", "Hunde", "m", "dog", "dogs"),
    Noun("Katze", "Katzen", "f", "cat", "cats"), Noun("Vogel", "Vögel", "m", "bird", "birds"),
    Noun("Pferd", "Pferde", "n", "horse", "horses"), Noun("Lehrer", "Lehrer", "m", "teacher", "teachers"),
    Noun("Mädchen", "Mädchen", "n", "girl", "girls"), Noun("Arzt", "Ärzte", "m", "doctor", "doctors"),
    Noun("Freund", "Freunde", "m", "friend", "friends"), Noun("Maus", "Mäuse", "f", "mouse", "mice"),
    Noun("Kuh", "Kühe", "f", "cow", "cows"), Noun("Schwester", "Schwestern", "f", "sister", "sisters"),
    Noun("Bruder", "Brüder", "m", "brother", "brothers"), Noun("Koch", "Köche", "m", "cook", "cooks"),
    Noun("König", "Könige", "m", "king", "kings"), Noun("Königin", "Königinnen", "f", "queen", "queens"),
    Noun("Bäcker", "Bäcker", "m", "baker", "bakers"), Noun("Ente", "Enten", "f", "duck", "ducks"),
    Noun("Schaf", "Schafe", "n", "sheep", "sheep"), Noun("Fisch", "Fische", "m", "fish", "fish"),
)
THINGS: tuple[Noun, ...] = (
    Noun("Ball", "Bälle", "m", "ball", "balls"), Noun("Buch", "Bücher", "n", "book", "books"),
    Noun("Brief", "Briefe", "m", "letter", "letters"), Noun("Apfel", "Äpfel", "m", "apple", "apples"),
    Noun("Tisch", "Tische", "m", "table", "tables"), Noun("Stuhl", "Stühle", "m", "chair", "chairs"),
    Noun("Tasche", "Taschen", "f", "bag", "bags"), Noun("Lampe", "Lampen", "f", "lamp", "lamps"),
    Noun("Blume", "Blumen", "f", "flower", "flowers"), Noun("Kuchen", "Kuchen", "m", "cake", "cakes"),
    Noun("Auto", "Autos", "n", "car", "cars"), Noun("Fahrrad", "Fahrräder", "n", "bicycle", "bicycles"),
    Noun("Schlüssel", "Schlüssel", "m", "key", "keys"), Noun("Hut", "Hüte", "m", "hat", "hats"),
    Noun("Bild", "Bilder", "n", "picture", "pictures"), Noun("Uhr", "Uhren", "f", "clock", "clocks"),
    Noun("Glas", "Gläser", "n", "glass", "glasses"), Noun("Flasche", "Flaschen", "f", "bottle", "bottles"),
    Noun("Zeitung", "Zeitungen", "f", "newspaper", "newspapers"), Noun("Boot", "Boote", "n", "boat", "boats"),
    Noun("Kerze", "Kerzen", "f", "candle", "candles"), Noun("Korb", "Körbe", "m", "basket", "baskets"),
    Noun("Tasse", "Tassen", "f", "cup", "cups"), Noun("Mantel", "Mäntel", "m", "coat", "coats"),
    Noun("Ring", "Ringe", "m", "ring", "rings"),
)
PLACES: tuple[Place, ...] = (
    Place("Garten", "m", "garden"), Place("Haus", "n", "house"), Place("Küche", "f", "kitchen"),
    Place("Schule", "f", "school"), Place("Park", "m", "park"), Place("Wald", "m", "forest"),
    Place("Stadt", "f", "town"), Place("Dorf", "n", "village"), Place("Zimmer", "n", "room"),
    Place("Kirche", "f", "church"), Place("Bahnhof", "m", "station"), Place("Laden", "m", "shop"),
    Place("Bibliothek", "f", "library"), Place("Hotel", "n", "hotel"), Place("Keller", "m", "cellar"),
    Place("Schloss", "n", "castle"), Place("Museum", "n", "museum"),
)
# (German preposition taking the dative for a location, English)
PREPOSITIONS: tuple[tuple[str, str], ...] = (
    ("in", "in"), ("neben", "next to"), ("hinter", "behind"), ("vor", "in front of"),
)
ADJECTIVES: tuple[tuple[str, str], ...] = (
    ("alt", "old"), ("jung", "young"), ("klein", "small"), ("groß", "big"), ("rot", "red"),
    ("grün", "green"), ("blau", "blue"), ("gelb", "yellow"), ("weiß", "white"), ("schwarz", "black"),
    ("braun", "brown"), ("müde", "tired"), ("glücklich", "happy"), ("traurig", "sad"), ("neu", "new"),
    ("schön", "beautiful"), ("stark", "strong"), ("freundlich", "friendly"), ("hungrig", "hungry"),
    ("laut", "loud"), ("leise", "quiet"), ("kalt", "cold"), ("warm", "warm"), ("klug", "clever"),
    ("langsam", "slow"), ("schnell", "fast"), ("lustig", "funny"), ("krank", "sick"), ("reich", "rich"),
    ("arm", "poor"), ("nett", "nice"), ("ruhig", "calm"), ("wild", "wild"), ("schmutzig", "dirty"),
    ("leer", "empty"), ("voll", "full"),
)
TRANSITIVE: tuple[Verb, ...] = (
    Verb("sieht", "sehen", "sees", "see"), Verb("findet", "finden", "finds", "find"),
    Verb("sucht", "suchen", "looks for", "look for"), Verb("trägt", "tragen", "carries", "carry"),
    Verb("kauft", "kaufen", "buys", "buy"), Verb("malt", "malen", "paints", "paint"),
    Verb("hält", "halten", "holds", "hold"), Verb("braucht", "brauchen", "needs", "need"),
    Verb("mag", "mögen", "likes", "like"), Verb("ruft", "rufen", "calls", "call"),
    Verb("besucht", "besuchen", "visits", "visit"), Verb("hört", "hören", "hears", "hear"),
    Verb("füttert", "füttern", "feeds", "feed"), Verb("wäscht", "waschen", "washes", "wash"),
    Verb("nimmt", "nehmen", "takes", "take"), Verb("bringt", "bringen", "brings", "bring"),
    Verb("vergisst", "vergessen", "forgets", "forget"), Verb("verkauft", "verkaufen", "sells", "sell"),
    Verb("zeichnet", "zeichnen", "draws", "draw"), Verb("versteckt", "verstecken", "hides", "hide"),
)
INTRANSITIVE: tuple[Verb, ...] = (
    Verb("schläft", "schlafen", "sleeps", "sleep"), Verb("wartet", "warten", "waits", "wait"),
    Verb("spielt", "spielen", "plays", "play"), Verb("sitzt", "sitzen", "sits", "sit"),
    Verb("steht", "stehen", "stands", "stand"), Verb("singt", "singen", "sings", "sing"),
    Verb("arbeitet", "arbeiten", "works", "work"), Verb("lacht", "lachen", "laughs", "laugh"),
    Verb("tanzt", "tanzen", "dances", "dance"), Verb("isst", "essen", "eats", "eat"),
    Verb("liest", "lesen", "reads", "read"), Verb("schreibt", "schreiben", "writes", "write"),
    Verb("weint", "weinen", "cries", "cry"),
)
# Main clauses that introduce a "dass" clause: (German, English)
SAY_CLAUSES: tuple[tuple[str, str], ...] = (
    ("Ich glaube", "I think"), ("Sie sagt", "She says"), ("Er weiß", "He knows"),
    ("Wir hoffen", "We hope"), ("Alle wissen", "Everyone knows"), ("Ich sehe", "I see"),
    ("Er sagt", "He says"), ("Sie glauben", "They believe"),
)
# "weil es ... ist/regnet" -> "because it is ..."
REASONS: tuple[tuple[str, str], ...] = (
    ("weil es spät ist", "because it is late"), ("weil es kalt ist", "because it is cold"),
    ("weil es warm ist", "because it is warm"), ("weil es regnet", "because it is raining"),
    ("weil es schneit", "because it is snowing"), ("weil es dunkel ist", "because it is dark"),
)
# Sentence-initial adverbials (German verb-second inversion follows them).
TIMES: tuple[tuple[str, str], ...] = (
    ("Heute", "Today"), ("Jetzt", "Now"), ("Am Abend", "In the evening"), ("Am Morgen", "In the morning"),
    ("Jeden Tag", "Every day"), ("Am Sonntag", "On Sunday"),
)
NUMBERS: tuple[tuple[str, str], ...] = (
    ("zwei", "two"), ("drei", "three"), ("vier", "four"), ("fünf", "five"), ("sechs", "six"),
    ("sieben", "seven"), ("acht", "eight"), ("neun", "nine"), ("zehn", "ten"), ("elf", "eleven"),
    ("zwölf", "twelve"),
)
