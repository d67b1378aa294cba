"""The prompt families Gemma 3 270M's findings are judged over (values, not tests).

Each family has a stable dev / held-out split by a hash of the item (see
:class:`pytest_annotate.Family`). Every threshold in this folder was chosen on the dev items
(each test's docstring gives the dev measurement it was chosen from) and is judged on the
held-out items, with a 95% interval.
"""

from __future__ import annotations

from pytest_annotate import from_list, ioi, windows

# Months, weekdays and digits take widths wide enough that the held-out split can settle a claim:
# with widths 3-5 only, 18 held-out months left the top-1 rate claim inconclusive (about 12 more
# items needed). The thresholds were then chosen again on the grown families' dev splits.
#: Every window of 3 to 8 consecutive months (going round past December), answer the next month.
MONTHS = windows("months", "months", range(3, 9))
#: Every window of 3 to 6 consecutive weekdays (going round), answer the next day.
WEEKDAYS = windows("weekdays", "weekdays", range(3, 7))
#: Every window of 2 to 6 digits 0-9 (no wrap); Gemma splits " 5" into " " + "5": two-token answers.
DIGITS = windows("digits", "digits", range(2, 7))
#: Every window of 3, 4 and 5 number words one..twenty.
NUMBER_WORDS = windows("number-words", "number_words", range(3, 6))
#: Every window of 3, 4 and 5 capital letters A..Z.
LETTERS = windows("letters", "letters", range(3, 6))
#: The same digit windows, with the answer two ahead ("1 2 3 4" -> " 6"): the claim about skipping MLP12.
DIGITS_PLUS_TWO = from_list(
    "digits+2",
    [(" ".join(str(d) for d in range(a, a + w)), f" {a + w + 1}") for w in (3, 4, 5) for a in range(0, 9 - w)],
    description="windows of 3-5 consecutive digits, answer the digit two after the last",
)
#: 200 indirect-object prompts (6 templates x 22 names, seeded sample): answer the indirect object,
#: foil the subject.
IOI = ioi("ioi", n=200)
