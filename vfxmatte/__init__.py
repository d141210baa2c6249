"""vfxmatte: diffusion-based alpha matting for VFX plates, with an uncertainty pass."""

__version__ = "0.1.0"
