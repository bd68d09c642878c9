"""The rule book's vocabulary: one declarative way to say what a value may be.

In the spirit of scikit-learn's ``Interval`` / ``StrOptions`` / ``validate_params``, a value's
rule is data, declared once where the value is defined, and read by everything that takes
the value:

* dataclass fields (the recipe, TrainConfig) carry a :class:`Param` in their metadata
  (:func:`param`): the rule, the help text, the widget label and the default;
* the command line builds each flag from a Param (:func:`add_flag`), so its help, its type
  and its error message are the rule's own;
* CSV readers check every cell against a :class:`CsvSchema`;
* the app draws sliders, number inputs and choice lists from the same rules
  (``explorer/widgets.py``), and the sweep draws its search space from them.

Every refusal is a :class:`~core.errors.UserError` (or the subclass the caller asks for)
whose message names the value, the rule and what is allowed.
"""

from core.rules.params import Param, add_flag, check_fields, flag_name, flag_type, help_text, param, params_of
from core.rules.paths import PathRule, resolve_user_path
from core.rules.tables import MAX_CSV_BYTES, CsvSchema, parse_cell
from core.rules.values import MISSING, NAME, Boolean, Depends, Interval, ListOf, Options, Rule, Text, shown

__all__ = ["MISSING", "MAX_CSV_BYTES", "NAME", "Boolean", "CsvSchema", "Depends", "Interval", "ListOf", "Options",
           "Param", "PathRule", "Rule", "Text", "add_flag", "check_fields", "flag_name", "flag_type", "help_text",
           "param", "params_of", "parse_cell", "resolve_user_path", "shown"]
