from .hooks import FeatureCacheHook

__all__ = ['FeatureCacheHook']
