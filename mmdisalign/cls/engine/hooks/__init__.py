from .feature_cache_hook import FeatureCacheHook

__all__ = ['FeatureCacheHook']
