"""The ground-truth package's exception and warning."""


class TemplateGenerationError(RuntimeError):
    """NEURON templates could not be generated (NEURON missing, mechanisms not compiling, crash)."""


class GroundTruthFallbackWarning(UserWarning):
    """Templates from SpikeInterface's generator were used instead of NEURON templates."""
