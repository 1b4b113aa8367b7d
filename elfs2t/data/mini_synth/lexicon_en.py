"""English word lists for the mini_synth ASR grammar (past-tense narrative English, ~400 words).

Words avoid homographs whose "a"/"an" choice breaks the first-letter rule (no "hour", "university").
Tuples are (singular, plural) for nouns and (base, third person singular, past) for verbs.
"""
from __future__ import annotations

PEOPLE: tuple[tuple[str, str], ...] = (
    ("man", "men"), ("woman", "women"), ("child", "children"), ("boy", "boys"), ("girl", "girls"),
    ("teacher", "teachers"), ("doctor", "doctors"), ("farmer", "farmers"), ("king", "kings"),
    ("queen", "queens"), ("sailor", "sailors"), ("soldier", "soldiers"), ("baker", "bakers"),
    ("driver", "drivers"), ("student", "students"), ("stranger", "strangers"), ("neighbor", "neighbors"),
    ("friend", "friends"), ("painter", "painters"), ("singer", "singers"), ("captain", "captains"),
    ("nurse", "nurses"), ("writer", "writers"), ("hunter", "hunters"),
)
ANIMALS: tuple[tuple[str, str], ...] = (
    ("dog", "dogs"), ("cat", "cats"), ("bird", "birds"), ("horse", "horses"), ("mouse", "mice"),
    ("rabbit", "rabbits"), ("fox", "foxes"), ("wolf", "wolves"), ("sheep", "sheep"), ("cow", "cows"),
    ("duck", "ducks"), ("goat", "goats"), ("bear", "bears"), ("lion", "lions"), ("owl", "owls"),
    ("fish", "fish"),
)
THINGS: tuple[tuple[str, str], ...] = (
    ("book", "books"), ("letter", "letters"), ("ball", "balls"), ("apple", "apples"), ("basket", "baskets"),
    ("key", "keys"), ("hat", "hats"), ("coat", "coats"), ("box", "boxes"), ("cup", "cups"),
    ("lamp", "lamps"), ("chair", "chairs"), ("picture", "pictures"), ("flower", "flowers"),
    ("candle", "candles"), ("ring", "rings"), ("bottle", "bottles"), ("map", "maps"), ("coin", "coins"),
    ("stone", "stones"), ("bag", "bags"), ("clock", "clocks"), ("boat", "boats"), ("wagon", "wagons"),
    ("song", "songs"), ("story", "stories"), ("cake", "cakes"), ("newspaper", "newspapers"),
)
PLACES: tuple[str, ...] = (
    "house", "garden", "river", "forest", "bridge", "kitchen", "school", "market", "station",
    "church", "hill", "road", "village", "city", "field", "lake", "mountain", "library", "park",
    "shop", "harbor", "castle", "farm", "window", "gate", "tower", "valley", "island",
)
PREPOSITIONS: tuple[str, ...] = (
    "in", "near", "behind", "beside", "across", "above", "below", "inside", "outside", "toward",
    "past", "around", "along", "under", "by",
)
ADJECTIVES: tuple[str, ...] = (
    "old", "young", "small", "big", "red", "green", "blue", "yellow", "white", "black", "brown",
    "happy", "sad", "tired", "quiet", "loud", "cold", "warm", "dark", "bright", "little", "tall",
    "short", "strong", "clever", "brave", "gentle", "angry", "hungry", "busy", "heavy", "empty",
    "famous", "friendly", "lazy", "lucky", "polite", "proud", "rich", "poor", "strange", "quick",
    "careful", "honest", "wet", "dry", "wild", "calm", "golden", "wooden",
)
ADVERBS: tuple[str, ...] = (
    "quickly", "slowly", "quietly", "carefully", "happily", "suddenly", "loudly", "gently",
    "calmly", "eagerly", "sadly", "proudly",
)
TRANSITIVE: tuple[tuple[str, str, str], ...] = (
    ("see", "sees", "saw"), ("find", "finds", "found"), ("take", "takes", "took"),
    ("bring", "brings", "brought"), ("carry", "carries", "carried"), ("follow", "follows", "followed"),
    ("watch", "watches", "watched"), ("help", "helps", "helped"), ("call", "calls", "called"),
    ("visit", "visits", "visited"), ("paint", "paints", "painted"), ("build", "builds", "built"),
    ("buy", "buys", "bought"), ("sell", "sells", "sold"), ("clean", "cleans", "cleaned"),
    ("hold", "holds", "held"), ("meet", "meets", "met"), ("remember", "remembers", "remembered"),
    ("like", "likes", "liked"), ("want", "wants", "wanted"), ("catch", "catches", "caught"),
    ("push", "pushes", "pushed"), ("pull", "pulls", "pulled"), ("hide", "hides", "hid"),
    ("show", "shows", "showed"), ("lose", "loses", "lost"), ("keep", "keeps", "kept"),
    ("feed", "feeds", "fed"), ("wash", "washes", "washed"), ("draw", "draws", "drew"),
)
INTRANSITIVE: tuple[tuple[str, str, str], ...] = (
    ("sleep", "sleeps", "slept"), ("wait", "waits", "waited"), ("play", "plays", "played"),
    ("sit", "sits", "sat"), ("stand", "stands", "stood"), ("sing", "sings", "sang"),
    ("work", "works", "worked"), ("run", "runs", "ran"), ("walk", "walks", "walked"),
    ("laugh", "laughs", "laughed"), ("dance", "dances", "danced"), ("rest", "rests", "rested"),
    ("swim", "swims", "swam"), ("smile", "smiles", "smiled"), ("listen", "listens", "listened"),
    ("travel", "travels", "traveled"), ("shout", "shouts", "shouted"), ("hide", "hides", "hid"),
)
NAMES: tuple[str, ...] = (
    "Anna", "Peter", "Maria", "Thomas", "Emma", "David", "Sarah", "James", "Lucy", "Henry",
    "Clara", "Oliver", "Julia", "Simon", "Laura", "Martin", "Helen", "George", "Nora", "Victor",
)
TIMES: tuple[str, ...] = (
    "yesterday", "this morning", "last night", "every day", "on Monday", "on Sunday", "in the evening",
    "after dinner", "before noon", "last week", "in the spring", "at dawn",
)
SAY_VERBS: tuple[str, ...] = ("said", "thought", "knew", "believed", "told me", "heard", "hoped")
CONNECTIVES: tuple[str, ...] = ("when", "after", "before", "because", "while", "although")

UNITS: tuple[str, ...] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
)
TENS: tuple[str, ...] = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def number_words(n: int) -> str:
    """Spell 2 <= n <= 999 in words the way LibriSpeech transcripts do ("two hundred and five")."""
    if not 0 <= n <= 999:
        raise ValueError(f"number_words: {n} is outside 0..999")
    words: list[str] = []
    if n >= 100:
        words += [UNITS[n // 100], "hundred"]
        n %= 100
        if n:
            words.append("and")
        else:
            return " ".join(words)
    if n < 20:
        words.append(UNITS[n])
    else:
        words.append(TENS[n // 10])
        if n % 10:
            words.append(UNITS[n % 10])
    return " ".join(words)
