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


class StoreError(HubkitError):
    """The store cannot be opened, or an object in it is missing or damaged."""


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


class PlotInputError(HubkitError, ValueError):
    """A table or field a plot cannot draw: a missing column, no rows, times that are not
    times. The message names the plot, the column and what was expected."""


class HubkitWarning(UserWarning):
    """Warnings hubkit issues on purpose (the test suite turns them into errors)."""
