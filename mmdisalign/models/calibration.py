"""DisAlign calibration (paper eq. 6) and its special cases (paper Table 2).

Every calibration here maps the logits ``z`` of a frozen classifier to

.. math::

    \\hat z_j = (1 + \\sigma \\alpha_j) z_j + \\sigma \\beta_j
              = \\mathrm{scale}_j z_j + \\mathrm{margin}_j

where ``alpha``/``beta`` are per-class vectors over the calibrated classes
and ``sigma`` is an input-dependent confidence (1 for the non-adaptive
special cases). The formula lives once, in :meth:`BaseCalibration.calibrate`;
subclasses only say what ``alpha``, ``beta`` and ``sigma`` are.
"""
import copy
import math
from collections import OrderedDict
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.registry import MODELS, WEIGHT_INITIALIZERS
from torch import Tensor

__all__ = [
    'BaseCalibration', 'DisAlignCalibration', 'LWSCalibration',
    'TauNormCalibration', 'LogitAdjustCalibration', 'is_calibration'
]

CalibTerms = Tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor]]


def is_calibration(module: nn.Module) -> bool:
    """Whether ``module`` is a calibration module (any
    :class:`BaseCalibration` subclass).

    The stage-2 freeze hook uses this to find the modules that stay
    trainable.

    Args:
        module (nn.Module): Any module.

    Returns:
        bool: True if ``module`` is a :class:`BaseCalibration`.
    """
    return isinstance(module, BaseCalibration)


def _check_num_classes(num_classes: int) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise TypeError('num_classes must be an int, but got '
                        f'{num_classes!r} ({type(num_classes).__name__})')
    if num_classes < 1:
        raise ValueError(f'num_classes must be >= 1, but got {num_classes}')
    return num_classes


def _check_real(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f'{name} must be a real number, but got '
                        f'{value!r} ({type(value).__name__})')
    if not math.isfinite(value):
        raise ValueError(f'{name} must be finite, but got {value}')
    return float(value)


class BaseCalibration(BaseModule):
    """Base class of every calibration: ``zhat = scale * z + margin``.

    With ``scale = 1 + sigma * alpha`` and ``margin = sigma * beta``
    (paper eq. 6). Subclasses implement :meth:`get_terms`, which returns
    ``alpha`` and ``beta`` (per calibrated class, shape ``(K,)``, or None
    for "no magnitude change" / "no margin") and ``sigma`` (a tensor that
    broadcasts against the logits with a size-1 class dimension, or None
    for sigma = 1). :meth:`forward` validates the logits, asks for the
    terms and applies :meth:`calibrate`.

    The logits have the classes on dimension 1: ``(N, L)`` or
    ``(N, L, *spatial)``, with ``L = num_classes +
    len(uncalibrated_columns)``. Uncalibrated columns (e.g. the detection
    background logit) get ``alpha = beta = 0`` and therefore pass through
    unchanged; ``alpha`` and ``beta`` apply to the remaining columns in
    order.

    Args:
        num_classes (int): Number of calibrated classes ``K``.
        uncalibrated_columns (Sequence[int]): Indices into the logit
            dimension (negative indices allowed) that pass through
            unchanged. Defaults to ``()``.
        init_cfg (dict | list[dict], optional): mmengine init config.
            Defaults to None.
    """

    def __init__(self,
                 num_classes: int,
                 uncalibrated_columns: Sequence[int] = (),
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.num_classes = _check_num_classes(num_classes)
        self.uncalibrated_columns = self._check_columns(
            uncalibrated_columns, num_classes)
        self.num_logits = num_classes + len(self.uncalibrated_columns)
        if self.uncalibrated_columns:
            skip = set(self.uncalibrated_columns)
            index = [i for i in range(self.num_logits) if i not in skip]
            self.register_buffer(
                'calibrated_index',
                torch.tensor(index, dtype=torch.long),
                persistent=False)
        else:
            self.register_buffer('calibrated_index', None, persistent=False)

    @staticmethod
    def _check_columns(columns: Sequence[int],
                       num_classes: int) -> Tuple[int, ...]:
        """Normalise uncalibrated column indices to sorted non-negative
        ints."""
        if isinstance(columns, int) and not isinstance(columns, bool):
            columns = (columns, )
        if columns is None:
            columns = ()
        if not isinstance(columns, (list, tuple)):
            raise TypeError('uncalibrated_columns must be a list/tuple of '
                            f'ints, but got {columns!r}')
        num_logits = num_classes + len(columns)
        normed = []
        for col in columns:
            if isinstance(col, bool) or not isinstance(col, int):
                raise TypeError('uncalibrated_columns must hold ints, but '
                                f'got {col!r} in {columns!r}')
            if not -num_logits <= col < num_logits:
                raise ValueError(
                    f'uncalibrated column {col} is out of range for '
                    f'{num_logits} logit columns (num_classes={num_classes} '
                    f'+ {len(columns)} uncalibrated)')
            normed.append(col % num_logits)
        if len(set(normed)) != len(normed):
            raise ValueError(
                f'uncalibrated_columns {tuple(columns)} name the same logit '
                f'column twice (as indices into {num_logits} columns: '
                f'{tuple(normed)})')
        return tuple(sorted(normed))

    def _check_logits(self, logits: Tensor) -> None:
        if not isinstance(logits, Tensor):
            raise TypeError('logits must be a torch.Tensor, but got '
                            f'{type(logits).__name__}')
        if logits.dim() < 2:
            raise ValueError('logits must have shape (N, L) or (N, L, ...) '
                             'with the classes on dim 1, but got shape '
                             f'{tuple(logits.shape)}')
        if logits.shape[1] != self.num_logits:
            extra = ''
            if self.uncalibrated_columns:
                extra = (f' = num_classes {self.num_classes} + '
                         f'{len(self.uncalibrated_columns)} uncalibrated '
                         f'{self.uncalibrated_columns}')
            raise ValueError(
                f'{self.__class__.__name__} expected {self.num_logits} logit '
                f'columns{extra} on dim 1, but got {logits.shape[1]} '
                f'(logits shape {tuple(logits.shape)})')

    def _to_logit_columns(self, vec: Tensor, logits: Tensor) -> Tensor:
        """Expand a per-class vector ``(K,)`` to the logit columns (zeros
        at uncalibrated columns) and shape it to broadcast over dim 1."""
        if self.calibrated_index is not None:
            vec = vec.new_zeros(self.num_logits).index_copy(
                0, self.calibrated_index, vec)
        return vec.view((self.num_logits, ) + (1, ) * (logits.dim() - 2))

    def calibrate(self,
                  logits: Tensor,
                  alpha: Optional[Tensor] = None,
                  beta: Optional[Tensor] = None,
                  sigma: Optional[Tensor] = None) -> Tensor:
        """Apply ``zhat = (1 + sigma * alpha) * z + sigma * beta``.

        Args:
            logits (Tensor): ``(N, L)`` or ``(N, L, *spatial)``.
            alpha (Tensor, optional): Magnitude offsets ``(K,)``; None means
                scale 1. Defaults to None.
            beta (Tensor, optional): Margins ``(K,)``; None means margin 0.
                Defaults to None.
            sigma (Tensor, optional): Confidence broadcastable to the
                logits with size 1 on dim 1; None means sigma = 1.
                Defaults to None.

        Returns:
            Tensor: Calibrated logits, same shape as ``logits``.
        """
        out = logits
        if alpha is not None:
            alpha = self._to_logit_columns(alpha, logits)
            scale = 1 + (alpha if sigma is None else sigma * alpha)
            out = out * scale
        if beta is not None:
            beta = self._to_logit_columns(beta, logits)
            out = out + (beta if sigma is None else sigma * beta)
        return out

    def get_terms(self, logits: Tensor, feats: Optional[Tensor],
                  **kwargs) -> CalibTerms:
        """Return ``(alpha, beta, sigma)`` for :meth:`calibrate`.

        Args:
            logits (Tensor): The (validated) logits.
            feats (Tensor, optional): The classifier input feature.
            **kwargs: Extra inputs some calibrations need.

        Returns:
            tuple: ``alpha`` ``(K,)`` or None, ``beta`` ``(K,)`` or None,
            ``sigma`` or None.
        """
        raise NotImplementedError

    def forward(self,
                logits: Tensor,
                feats: Optional[Tensor] = None,
                **kwargs) -> Tensor:
        """Calibrate ``logits``.

        Args:
            logits (Tensor): ``(N, L)`` or ``(N, L, *spatial)`` logits.
            feats (Tensor, optional): The feature that fed the classifier;
                only adaptive calibrations need it. Defaults to None.
            **kwargs: Extra inputs, e.g. ``classifier_weight`` for
                :class:`TauNormCalibration`; others ignore them.

        Returns:
            Tensor: Calibrated logits of the same shape.
        """
        self._check_logits(logits)
        alpha, beta, sigma = self.get_terms(logits, feats, **kwargs)
        return self.calibrate(logits, alpha, beta, sigma)

    def extra_repr(self) -> str:
        s = f'num_classes={self.num_classes}'
        if self.uncalibrated_columns:
            s += f', uncalibrated_columns={self.uncalibrated_columns}'
        return s


@MODELS.register_module()
class DisAlignCalibration(BaseCalibration):
    """DisAlign adaptive calibration (paper eq. 6).

    ``zhat_j = (1 + sigma(x) * alpha_j) * z_j + sigma(x) * beta_j`` with
    ``sigma(x) = sigmoid(confidence(x))`` computed from the feature ``x``
    that fed the classifier. ``confidence`` is a 1-output ``nn.Linear`` on
    ``(N, C)`` features, or a 1x1 ``nn.Conv2d`` on ``(N, C, H, W)`` features
    when ``dense=True`` (sigma is then a per-pixel map and alpha/beta are
    broadcast over pixels). With a norm and/or activation, ``confidence`` is
    an ``nn.Sequential`` of ``fc``/``conv`` (no bias when normed), the norm
    layer and ``activate`` (mmcv ConvModule naming).

    Initialisation (``init_mode``):

    - ``'identity'`` (paper, reference detection and segmentation):
      ``alpha = beta = 0``, so the module is the identity at init.
      Confidence weight ~ N(0, 0.01), bias 0; with a norm layer (reference
      segmentation: conv -> BN -> ReLU) the weight is Kaiming-normal
      (fan_out, relu) as mmcv's ConvModule does, and the norm is weight 1,
      bias 0.
    - ``'reference_cls'`` (reference classification head
      ``(1 + sigma*s)*z + sigma*b`` with ``s = 1``): ``alpha = 1``,
      ``beta = 0``, confidence weight constant 0.1, bias PyTorch's default
      ``U(-1/sqrt(C), 1/sqrt(C))``. Not the identity at init.

    The initialisation is applied in ``__init__`` and re-applied by the
    first :meth:`init_weights` call (unless this module has its own
    ``init_cfg``), so a parent's ``init_cfg`` (e.g. ``Normal`` on every
    ``Linear``) does not overwrite it.

    Args:
        num_classes (int): Number of calibrated classes ``K``.
        in_channels (int): Channels ``C`` of the feature.
        dense (bool): Dense ``(N, C, H, W)`` inputs with a 1x1 conv
            confidence instead of ``(N, C)`` with a linear one.
            Defaults to False.
        init_mode (str): ``'identity'`` or ``'reference_cls'``.
            Defaults to ``'identity'``.
        normalize_feature (bool): Compute sigma from the L2-normalised
            feature (over dim 1), as the reference cosine classification
            head does. Defaults to False.
        confidence_norm_cfg (dict, optional): mmcv norm config applied to
            the 1-channel confidence before the sigmoid, e.g.
            ``dict(type='SyncBN')``. For non-dense inputs ``type='BN'`` means
            ``BatchNorm1d``. Defaults to None.
        confidence_act_cfg (dict, optional): mmcv activation config applied
            after the norm, e.g. ``dict(type='ReLU')`` (then sigma >= 0.5).
            Defaults to None.
        uncalibrated_columns (Sequence[int]): Logit columns passed through
            unchanged (e.g. ``(-1,)`` for the detection background).
            Defaults to ``()``.
        alpha_init (float, optional): Overrides the mode's alpha init.
            Defaults to None.
        beta_init (float, optional): Overrides the mode's beta init.
            Defaults to None.
        confidence_init (dict, optional): An mmengine weight-init config
            (e.g. ``dict(type='Normal', std=0.05, bias=0.)``) applied to the
            confidence linear/conv layer instead of the mode's init.
            Defaults to None.
        init_cfg (dict | list[dict], optional): mmengine init config of
            this module; if given, it is applied by :meth:`init_weights`
            after the built-in initialisation. Defaults to None.
    """

    init_modes = ('identity', 'reference_cls')

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 dense: bool = False,
                 init_mode: str = 'identity',
                 normalize_feature: bool = False,
                 confidence_norm_cfg: Optional[dict] = None,
                 confidence_act_cfg: Optional[dict] = None,
                 uncalibrated_columns: Sequence[int] = (),
                 alpha_init: Optional[float] = None,
                 beta_init: Optional[float] = None,
                 confidence_init: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(num_classes, uncalibrated_columns, init_cfg)
        if isinstance(in_channels, bool) or not isinstance(in_channels, int):
            raise TypeError('in_channels must be an int, but got '
                            f'{in_channels!r}')
        if in_channels < 1:
            raise ValueError(f'in_channels must be >= 1, but got '
                             f'{in_channels}')
        if init_mode not in self.init_modes:
            raise ValueError(f'init_mode must be one of {self.init_modes}, '
                             f'but got {init_mode!r}')
        if confidence_init is not None and not isinstance(
                confidence_init, dict):
            raise TypeError(
                'confidence_init must be a dict (an mmengine '
                f'weight-init config), but got {confidence_init!r}')
        self.in_channels = in_channels
        self.dense = bool(dense)
        self.init_mode = init_mode
        self.normalize_feature = bool(normalize_feature)
        default_alpha = 1.0 if init_mode == 'reference_cls' else 0.0
        self.alpha_init = _check_real(
            'alpha_init', default_alpha if alpha_init is None else alpha_init)
        self.beta_init = _check_real('beta_init',
                                     0.0 if beta_init is None else beta_init)
        self.confidence_init = copy.deepcopy(confidence_init)

        self.alpha = nn.Parameter(torch.empty(num_classes))
        self.beta = nn.Parameter(torch.empty(num_classes))
        self.confidence = self._build_confidence(confidence_norm_cfg,
                                                 confidence_act_cfg)
        self.reset_calibration()

    def _build_confidence(self, norm_cfg: Optional[dict],
                          act_cfg: Optional[dict]) -> nn.Module:
        with_norm = norm_cfg is not None
        layer_cls = nn.Conv2d if self.dense else nn.Linear
        args = (self.in_channels, 1, 1) if self.dense else (self.in_channels,
                                                            1)
        layer = layer_cls(*args, bias=not with_norm)
        self._norm_name = None
        self._act_cfg = act_cfg
        if norm_cfg is None and act_cfg is None:
            return layer
        from mmcv.cnn import build_activation_layer, build_norm_layer
        modules = [('conv' if self.dense else 'fc', layer)]
        if norm_cfg is not None:
            if not isinstance(norm_cfg, dict) or 'type' not in norm_cfg:
                raise TypeError('confidence_norm_cfg must be a dict with a '
                                f'"type" key, but got {norm_cfg!r}')
            norm_cfg = dict(norm_cfg)
            if not self.dense and norm_cfg['type'] == 'BN':
                norm_cfg['type'] = 'BN1d'
            self._norm_name, norm = build_norm_layer(norm_cfg, 1)
            modules.append((self._norm_name, norm))
        if act_cfg is not None:
            if not isinstance(act_cfg, dict) or 'type' not in act_cfg:
                raise TypeError('confidence_act_cfg must be a dict with a '
                                f'"type" key, but got {act_cfg!r}')
            modules.append(('activate', build_activation_layer(act_cfg)))
        return nn.Sequential(OrderedDict(modules))

    @property
    def confidence_layer(self) -> nn.Module:
        """The linear / 1x1 conv layer inside :attr:`confidence`."""
        if isinstance(self.confidence, nn.Sequential):
            return self.confidence[0]
        return self.confidence

    @torch.no_grad()
    def reset_calibration(self) -> None:
        """(Re)apply the ``init_mode`` initialisation (and overrides)."""
        self.alpha.fill_(self.alpha_init)
        self.beta.fill_(self.beta_init)
        layer = self.confidence_layer
        norm = None
        if self._norm_name is not None:
            norm = getattr(self.confidence, self._norm_name)
            if getattr(norm, 'weight', None) is not None:
                nn.init.ones_(norm.weight)
            if getattr(norm, 'bias', None) is not None:
                nn.init.zeros_(norm.bias)

        if self.confidence_init is not None:
            initializer = WEIGHT_INITIALIZERS.build(
                copy.deepcopy(self.confidence_init))
            initializer.wholemodule = True
            initializer(layer)
        elif self.init_mode == 'reference_cls':
            nn.init.constant_(layer.weight, 0.1)
            if layer.bias is not None:
                bound = 1.0 / math.sqrt(self.in_channels)
                nn.init.uniform_(layer.bias, -bound, bound)
        elif norm is not None:
            # mmcv ConvModule default (reference segmentation head)
            act_cfg = self._act_cfg or {}
            if act_cfg.get('type') == 'LeakyReLU':
                a = act_cfg.get('negative_slope', 0.01)
                nonlinearity = 'leaky_relu'
            else:
                a, nonlinearity = 0, 'relu'
            nn.init.kaiming_normal_(
                layer.weight, a=a, mode='fan_out', nonlinearity=nonlinearity)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        else:
            nn.init.normal_(layer.weight, mean=0.0, std=0.01)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)

    def init_weights(self) -> None:
        """Initialise; keeps the calibration init on the first call.

        mmengine applies a parent's ``init_cfg`` to all descendants before
        calling the children's ``init_weights``; re-applying the built-in
        initialisation here undoes that. If this module has its own
        ``init_cfg``, that config is applied instead and wins.
        """
        first_call = not self._is_init
        super().init_weights()
        if first_call and not self.init_cfg:
            self.reset_calibration()

    def _check_feats(self, logits: Tensor, feats: Optional[Tensor]) -> None:
        name = self.__class__.__name__
        if feats is None:
            raise ValueError(f'{name} needs the classifier input feature: '
                             'call it as calibration(logits, feats)')
        if not isinstance(feats, Tensor):
            raise TypeError(f'feats must be a torch.Tensor, but got '
                            f'{type(feats).__name__}')
        if self.dense:
            if logits.dim() != 4:
                raise ValueError(
                    f'{name}(dense=True) expects logits (N, K, H, W), but '
                    f'got shape {tuple(logits.shape)}; use dense=False for '
                    '(N, K) logits')
            if feats.dim() != 4:
                raise ValueError(
                    f'{name}(dense=True) expects feats (N, C, H, W), but '
                    f'got shape {tuple(feats.shape)}')
        else:
            if logits.dim() != 2:
                raise ValueError(
                    f'{name}(dense=False) expects logits (N, K), but got '
                    f'shape {tuple(logits.shape)}; set dense=True for dense '
                    '(N, K, H, W) logits')
            if feats.dim() != 2:
                raise ValueError(
                    f'{name}(dense=False) expects feats (N, C), but got '
                    f'shape {tuple(feats.shape)}; flatten the feature or '
                    'set dense=True for (N, C, H, W) maps')
        if feats.shape[1] != self.in_channels:
            raise ValueError(
                f'{name} expected feats with in_channels={self.in_channels} '
                f'on dim 1, but got {feats.shape[1]} (feats shape '
                f'{tuple(feats.shape)})')
        if feats.shape[0] != logits.shape[0]:
            raise ValueError(
                f'{name}: feats batch size {feats.shape[0]} does not match '
                f'logits batch size {logits.shape[0]}')
        if self.dense and feats.shape[2:] != logits.shape[2:]:
            raise ValueError(
                f'{name}: feats spatial size {tuple(feats.shape[2:])} does '
                f'not match logits spatial size {tuple(logits.shape[2:])}; '
                'compute the calibration at the resolution of the logits '
                '(no interpolation is done here)')

    def get_confidence(self, feats: Tensor) -> Tensor:
        """sigma = sigmoid(confidence(x)): ``(N, 1)`` or ``(N, 1, H, W)``.

        Args:
            feats (Tensor): ``(N, C)`` or ``(N, C, H, W)`` feature.

        Returns:
            Tensor: The confidence in (0, 1).
        """
        if self.normalize_feature:
            feats = F.normalize(feats, p=2, dim=1)
        return torch.sigmoid(self.confidence(feats))

    def get_terms(self, logits: Tensor, feats: Optional[Tensor],
                  **kwargs) -> CalibTerms:
        self._check_feats(logits, feats)
        return self.alpha, self.beta, self.get_confidence(feats)

    def extra_repr(self) -> str:
        return (f'{super().extra_repr()}, in_channels={self.in_channels}, '
                f'dense={self.dense}, init_mode={self.init_mode!r}, '
                f'normalize_feature={self.normalize_feature}')


@MODELS.register_module()
class LWSCalibration(BaseCalibration):
    """Learnable weight scaling (LWS): ``zhat_j = (1 + alpha_j) * z_j``.

    Paper Table 2 row "LWS" (magnitude learned, margin 0, sigma 1); its
    magnitude is ``1 + alpha_j`` here, so ``alpha = 0`` is the identity.

    Args:
        num_classes (int): Number of calibrated classes ``K``.
        uncalibrated_columns (Sequence[int]): Logit columns passed through
            unchanged. Defaults to ``()``.
        alpha_init (float): Initial magnitude offset. Defaults to 0.
        init_cfg (dict | list[dict], optional): mmengine init config.
            Defaults to None.
    """

    def __init__(self,
                 num_classes: int,
                 uncalibrated_columns: Sequence[int] = (),
                 alpha_init: float = 0.0,
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(num_classes, uncalibrated_columns, init_cfg)
        self.alpha_init = _check_real('alpha_init', alpha_init)
        self.alpha = nn.Parameter(torch.full((num_classes, ), self.alpha_init))

    def init_weights(self) -> None:
        """Initialise; keeps ``alpha = alpha_init`` on the first call."""
        first_call = not self._is_init
        super().init_weights()
        if first_call and not self.init_cfg:
            with torch.no_grad():
                self.alpha.fill_(self.alpha_init)

    def get_terms(self, logits: Tensor, feats: Optional[Tensor],
                  **kwargs) -> CalibTerms:
        return self.alpha, None, None


@MODELS.register_module()
class TauNormCalibration(BaseCalibration):
    """tau-normalisation: ``zhat_j = z_j / ||w_j||^tau``.

    Paper Table 2 row "tau-Normalized": magnitude ``1 / ||w_j||^tau``, no
    margin, nothing learned. The classifier weight is passed at forward
    time as ``classifier_weight`` (shape ``(K, D)``, or ``(L, D)`` with a
    row per logit column, or a conv weight ``(K, D, 1, 1)``); it is
    detached. The rescaling acts on the logits, so a classifier bias is
    scaled together with ``W x``: ``zhat_j = (w_j x + b_j) / ||w_j||^tau``.

    Args:
        num_classes (int): Number of calibrated classes ``K``.
        tau (float): The exponent. Defaults to 1.0.
        uncalibrated_columns (Sequence[int]): Logit columns passed through
            unchanged. Defaults to ``()``.
        init_cfg (dict | list[dict], optional): mmengine init config.
            Defaults to None.
    """

    def __init__(self,
                 num_classes: int,
                 tau: float = 1.0,
                 uncalibrated_columns: Sequence[int] = (),
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(num_classes, uncalibrated_columns, init_cfg)
        self.tau = _check_real('tau', tau)

    def get_terms(self,
                  logits: Tensor,
                  feats: Optional[Tensor],
                  classifier_weight: Optional[Tensor] = None,
                  **kwargs) -> CalibTerms:
        name = self.__class__.__name__
        if classifier_weight is None:
            raise ValueError(
                f'{name} needs the classifier weight: call it as '
                'calibration(logits, feats, classifier_weight=W) with W of '
                f'shape ({self.num_classes}, D)')
        if not isinstance(classifier_weight, Tensor):
            raise TypeError('classifier_weight must be a torch.Tensor, but '
                            f'got {type(classifier_weight).__name__}')
        weight = classifier_weight.detach()
        rows = weight.shape[0] if weight.dim() >= 1 else None
        if weight.dim() < 2 or rows not in (self.num_classes, self.num_logits):
            allowed = f'{self.num_classes}'
            if self.num_logits != self.num_classes:
                allowed += f' or {self.num_logits}'
            raise ValueError(
                f'{name} expected classifier_weight of shape ({allowed}, D, '
                f'...), but got {tuple(weight.shape)}')
        norms = weight.flatten(1).norm(p=2, dim=1)
        if rows != self.num_classes:
            norms = norms.index_select(0, self.calibrated_index)
        if bool((norms == 0).any()):
            zero = torch.nonzero(norms == 0).flatten().tolist()
            raise ValueError(f'{name}: classifier weight rows of calibrated '
                             f'classes {zero} have zero norm')
        alpha = norms.pow(-self.tau) - 1
        return alpha.to(logits.dtype), None, None

    def extra_repr(self) -> str:
        return f'{super().extra_repr()}, tau={self.tau}'


@MODELS.register_module()
class LogitAdjustCalibration(BaseCalibration):
    """Post-hoc logit adjustment: ``zhat_j = z_j - tau * log r_j``.

    Paper Table 2 row "Logit Adjust": magnitude 1, margin
    ``-tau * log r_j`` with ``r_j = n_j / sum_k n_k``; nothing learned. The
    margin is a non-persistent buffer (not saved in checkpoints).

    Args:
        num_classes (int): Number of calibrated classes ``K``.
        class_freq (list | str): Per-class counts (or ratios) of the
            calibrated classes, or a JSON file path, as accepted by
            :func:`mmdisalign.utils.class_freq.load_class_freq`.
        tau (float): The adjustment strength (lambda in the paper).
            Defaults to 1.0.
        uncalibrated_columns (Sequence[int]): Logit columns passed through
            unchanged. Defaults to ``()``.
        class_freq_key (str): Key used when ``class_freq`` is a JSON file.
            Defaults to ``'counts'``.
        init_cfg (dict | list[dict], optional): mmengine init config.
            Defaults to None.
    """

    def __init__(self,
                 num_classes: int,
                 class_freq: Union[Sequence[float], str],
                 tau: float = 1.0,
                 uncalibrated_columns: Sequence[int] = (),
                 class_freq_key: str = 'counts',
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(num_classes, uncalibrated_columns, init_cfg)
        from mmdisalign.utils.class_freq import load_class_freq
        self.tau = _check_real('tau', tau)
        freq = load_class_freq(
            class_freq, num_classes=num_classes, key=class_freq_key)
        freq = torch.as_tensor(freq, dtype=torch.float64).flatten()
        if freq.numel() != num_classes:
            raise ValueError(f'class_freq has {freq.numel()} entries, but '
                             f'num_classes is {num_classes}')
        bad = torch.nonzero(~(torch.isfinite(freq) & (freq > 0))).flatten()
        if bad.numel():
            idx = bad[0].item()
            raise ValueError(
                'LogitAdjustCalibration needs a positive, finite frequency '
                f'for every class, but class {idx} has {freq[idx].item()}')
        ratio = freq / freq.sum()
        self.register_buffer(
            'margin', (-self.tau * ratio.log()).float(), persistent=False)

    def get_terms(self, logits: Tensor, feats: Optional[Tensor],
                  **kwargs) -> CalibTerms:
        return None, self.margin, None

    def extra_repr(self) -> str:
        return f'{super().extra_repr()}, tau={self.tau}'
