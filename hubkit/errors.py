"""The one exception hierarchy of hubkit.

Every error raised on purpose by hubkit is a :class:`HubkitError`. Messages say what was found and
what was expected, and name the file and the variable where there is one.
"""


class HubkitError(Exception):
    """Root of every error hubkit raises on purpose."""


class IngestError(HubkitError):
    """A source file cannot be read: missing, empty, corrupt, or of an unknown format."""


class SchemaError(HubkitError):
    """A dataset does not match the schema of its product type (variables, dims, units)."""


class NotRegularFileError(IngestError):
    """The path is a FIFO, a device or a socket (refused before it is opened: reading a FIFO
    blocks until a writer comes), or a directory that is not a Zarr group."""


class InputTooLargeError(IngestError):
    """The file declares more data than :data:`hubkit.io.MAX_INPUT_BYTES`; nothing was loaded."""


class VariableNameError(SchemaError):
    """A variable name the Zarr layout cannot hold as given (``a/b``, ``dir\\name``, ``..``)."""


class ValidationError(SchemaError):
    """Values that break the rules of their product type (:mod:`hubkit.io.validation`).

    The message names the file, the variable, how many values (of how many) and which rows, and
    what was expected. The same facts are attributes: ``source``, ``variable``, ``count``,
    ``total`` and ``rows`` (the first offending row indices).
    """

    def __init__(self, message: str, *, source=None, variable=None, count=None, total=None,
                 rows=()):
        super().__init__(message)
        self.source = source
        self.variable = variable
        self.count = count
        self.total = total
        self.rows = tuple(rows)


class CoordinateError(ValidationError):
    """Latitudes or longitudes missing everywhere, infinite or out of range."""


class TimeRangeError(ValidationError):
    """Times missing everywhere, outside the platform's plausible window, or beyond what
    ``datetime64[ns]`` holds (1677-09-21 to 2262-04-11: converting them would overflow)."""


class TimeOrderError(ValidationError):
    """Rows out of time order in a product type whose schema refuses it."""


class UnitsError(ValidationError):
    """Values whose magnitude says their units attribute is wrong (XCO2 of 4e-4 'ppm')."""


class ValueRangeError(ValidationError):
    """Measurements outside their physical range, or none finite."""


class DuplicateIdError(ValidationError):
    """Identifiers (sounding ids) that must be unique and are not."""


class StoreError(HubkitError):
    """The store cannot be opened, or an object in it is missing or damaged."""


class MissingStoreError(StoreError):
    """The store URL names no existing store, and the command was not asked to create one."""


class SearchTermError(StoreError):
    """A search term nothing can match: an unknown product type, species or instrument, or a
    date that is not ISO 8601. The message says what is known (did you mean …)."""


class DamagedItemError(StoreError):
    """A product's Item cannot be used: unreadable, not a valid Item, or its data incomplete.

    ``item_id`` names the product and ``reason`` says what is wrong; ``hubkit fsck --repair``
    moves the product to the store's quarantine.
    """

    def __init__(self, message: str, item_id: str, reason: str):
        super().__init__(message)
        self.item_id = item_id
        self.reason = reason


class ChainError(HubkitError):
    """A processing-chain step cannot run."""


class HubError(HubkitError):
    """The local hub (``hubkit hub``) could not start, or one of its processes died; the message
    says which and where its log is."""


class ComputeError(HubkitError):
    """No Dask client can be made: scheduler or gateway unreachable, or a package missing."""


class FusionInputError(HubkitError, ValueError):
    """Fusion input that cannot be fused: wrong shape, non-symmetric or non-PSD covariance, NaN.

    ``cell`` (an index tuple into the batch dimensions, or a label) and ``retrieval`` (the slot
    index within the cell) say where, when the problem belongs to one retrieval.
    """

    def __init__(self, message: str, cell=None, retrieval: int | None = None):
        super().__init__(message)
        self.cell = cell
        self.retrieval = retrieval


class OzoneInputError(HubkitError, ValueError):
    """Input the tropospheric-ozone functions cannot use: a missing variable or coefficient,
    wrong units, inconsistent level counts. The message names the variable and what was
    expected."""


class AssimilationInputError(HubkitError, ValueError):
    """Input an assimilation function cannot use: wrong shape, non-finite or non-positive values.

    The message names the argument, what was found and what was expected.
    """


class UVInputError(HubkitError, ValueError):
    """Inputs to the surface-UV lookup (ozone, albedo, solar zenith angle, ...) are invalid.

    The message names the variable, the values found and what was expected.
    """


class CO2InputError(HubkitError, ValueError):
    """Input the OCO-2 peak fitting, emission or attribution functions cannot use: a missing
    variable or column, unsorted coordinates, unknown options. The message names it and what
    was expected."""


class SimulationInputError(HubkitError, ValueError):
    """Settings a simulator cannot honour (an unknown instrument, layout, a plume without a
    wind). The message names the argument and what was expected."""


class ChainSpecError(ChainError, ValueError):
    """A step or query declared with impossible settings (unknown grouping, negative delays);
    raised when the declaration is made, before anything runs."""


class ComputeSettingError(ComputeError, ValueError):
    """A Dask setting (worker count, memory limit, address) that cannot be used; the message
    names the setting (argument or environment variable) and what was expected."""


class ComparisonInputError(HubkitError, ValueError):
    """Input a comparison with ground truth cannot use (:mod:`hubkit.validate`): a missing
    variable, inconsistent units or lengths, criteria that contradict each other. The message
    names the variable or argument and what was expected."""


class EngineError(HubkitError):
    """The radiative-transfer engine of the UV table (NCAR's TUV-x, from ``musica``) is missing
    or one of its runs failed."""


class PlotInputError(HubkitError, ValueError):
    """A table or field a plot cannot draw: a missing column, no rows, times that are not
    times. The message names the plot, the column and what was expected."""


class ProductKindError(HubkitError, ValueError):
    """A product a command cannot use as it is: a gridded dataset where a table is expected, a
    table without latitude/longitude where positions are needed. The message names the product,
    what it is and what was expected."""


class HubkitWarning(UserWarning):
    """Warnings hubkit issues on purpose (the test suite turns them into errors)."""


class FlaggedRowsWarning(HubkitWarning):
    """A file was accepted with some rows flagged invalid in ``input_flag`` (kept, unchanged);
    the message says how many, which variables and why."""
