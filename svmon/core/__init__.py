"""The pure accounting core: standard library only, no broker, database or web.

Start with :func:`fold`, the one function that turns a contract's log into state.
"""

from svmon.core.catalogue import Catalogue, Measure
from svmon.core.errors import InvalidInput, RejectedEvent, SchemaError, SvmonError, UnknownMeasure
from svmon.core.fold import fold, fold_all
from svmon.core.rules import DEFAULT_POLICY, Policy, expected_by, forecast, shortfall
from svmon.core.state import ContractState, Totals, state_from_dict, state_to_dict

__all__ = [
    "DEFAULT_POLICY",
    "Catalogue",
    "ContractState",
    "InvalidInput",
    "Measure",
    "Policy",
    "RejectedEvent",
    "SchemaError",
    "SvmonError",
    "Totals",
    "UnknownMeasure",
    "expected_by",
    "fold",
    "fold_all",
    "forecast",
    "shortfall",
    "state_from_dict",
    "state_to_dict",
]
