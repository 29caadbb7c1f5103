"""DisAlign calibration (paper eq. 6) and its special cases (Table 2).

See docs/calibration.md.
"""
import copy
import math
import os
import weakref
from collections import OrderedDict
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule, constant_init, kaiming_init, normal_init
from mmengine.registry import MODELS, WEIGHT_INITIALIZERS
from torch import Tensor

from mmdisalign.utils.class_freq import load_class_freq
from .precision import autocast_enabled, fp32_region, to_fp32

__all__ = [
    'BaseCalibration', 'DisAlignCalibration', 'LWSCalibration',
    'TauNormCalibration', 'LogitAdjustCalibration', 'is_calibration'
]

CalibTerms = Tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor]]


def is_calibration(module: nn.Module) -> bool:
    """Whether ``module`` is a calibration (stays trainable in stage 2)."""
    return isinstance(module, BaseCalibration)


def _mark_loaded(module: 'BaseCalibration', incompatible_keys) -> None:
    """``load_state_dict`` post-hook: the model got weights from a
    checkpoint (``load_from``, ``resume``); check the next training."""
    module.loaded_weights = True
    module._training_checked = False


def _finite(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f'{name} must be finite, but got {value}')
    return value


class BaseCalibration(BaseModule):
    """Base of every calibration: ``zhat = (1 + sigma * alpha) * z + sigma *
    beta``; subclasses say what ``alpha``, ``beta`` and ``sigma`` are
    (:meth:`get_terms`).

    The logits have the classes on dim 1: ``(N, L)`` or ``(N, L, ...)``
    with ``L = num_classes + len(uncalibrated_columns)``; uncalibrated
    columns (e.g. the detection background) pass through unchanged.

    Args:
        num_classes (int): Number of calibrated classes ``K``.
        uncalibrated_columns (Sequence[int]): Logit columns (negative
            indices allowed) that pass through unchanged. Defaults to ().
        init_cfg (dict | list[dict], optional): mmengine init config.
            Defaults to None.
        joint_training (bool): The whole network is meant to train with
            this calibration after loading a checkpoint, without
            ``DisAlignFreezeHook``. Otherwise, after a checkpoint was
            loaded, the first backward pass into the network before the
            calibration stops the run unless the hook decided what trains
            (stage 2 without the hook would fine-tune the whole stage-1
            network). Defaults to False.
    """

    def __init__(self,
                 num_classes: int,
                 uncalibrated_columns: Sequence[int] = (),
                 init_cfg: Optional[Union[dict, list]] = None,
                 joint_training: bool = False) -> None:
        super().__init__(init_cfg=init_cfg)
        self.joint_training = bool(joint_training)
        #: Set when a state dict was loaded into a model holding this
        #: module; then training is checked (:meth:`_check_training`).
        self.loaded_weights = False
        #: Set by DisAlignFreezeHook once it decided what trains.
        self.freeze_planned = False
        self._training_checked = False
        self.register_load_state_dict_post_hook(_mark_loaded)
        if num_classes < 1:
            raise ValueError(
                f'num_classes must be >= 1, but got {num_classes}')
        self.num_classes = num_classes
        columns = tuple(uncalibrated_columns)
        self.num_logits = num_logits = num_classes + len(columns)
        for col in columns:
            if not -num_logits <= col < num_logits:
                raise ValueError(
                    f'uncalibrated column {col} is out of range for '
                    f'{num_logits} logit columns (num_classes={num_classes} '
                    f'+ {len(columns)} uncalibrated)')
        normed = sorted({col % num_logits for col in columns})
        if len(normed) != len(columns):
            raise ValueError(
                f'uncalibrated_columns {columns} name the same logit column '
                f'twice (as indices into {num_logits} columns)')
        self.uncalibrated_columns = tuple(normed)
        index = None
        if normed:
            index = torch.tensor(
                [i for i in range(num_logits) if i not in normed])
        self.register_buffer('calibrated_index', index, persistent=False)

    def _to_logit_columns(self, vec: Tensor, logits: Tensor) -> Tensor:
        """``(K,)`` as ``(L, 1, ...)``, 0 in the uncalibrated columns."""
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
            alpha (Tensor, optional): ``(K,)``; None: scale 1.
            beta (Tensor, optional): ``(K,)``; None: margin 0.
            sigma (Tensor, optional): Broadcastable to the logits, size 1
                on dim 1; None: sigma = 1.

        Returns:
            Tensor: Calibrated logits, same shape as ``logits``.
        """
        out = logits
        if alpha is not None:
            alpha = self._to_logit_columns(alpha, logits)
            out = out * (1 + (alpha if sigma is None else sigma * alpha))
        if beta is not None:
            beta = self._to_logit_columns(beta, logits)
            out = out + (beta if sigma is None else sigma * beta)
        return out

    def get_terms(self, logits: Tensor, feats: Optional[Tensor],
                  **kwargs) -> CalibTerms:
        """Return ``(alpha, beta, sigma)`` for :meth:`calibrate`."""
        raise NotImplementedError

    def reset_calibration(self) -> None:
        """(Re)apply the built-in initialisation (none here)."""

    def init_weights(self) -> None:
        """The first call re-applies :meth:`reset_calibration` (undoing a
        parent's ``init_cfg``) unless this module has its own ``init_cfg``.
        """
        first_call = not self.is_init
        super().init_weights()
        if first_call and not self.init_cfg:
            self.reset_calibration()

    def forward(self,
                logits: Tensor,
                feats: Optional[Tensor] = None,
                **kwargs) -> Tensor:
        """Calibrate ``logits``.

        Args:
            logits (Tensor): ``(N, L)`` or ``(N, L, *spatial)``.
            feats (Tensor, optional): The classifier input; adaptive
                calibrations need it. Defaults to None.
            **kwargs: Extra inputs, e.g. ``classifier_weight`` for
                :class:`TauNormCalibration`; others ignore them.

        Returns:
            Tensor: Calibrated logits of the same shape; under autocast
            computed and returned in float32.
        """
        if logits.dim() < 2:
            raise ValueError(
                'logits must have shape (N, L) or (N, L, ...) with the '
                f'classes on dim 1, but got {tuple(logits.shape)}')
        # A size-1 dim 1 would broadcast silently against alpha and beta.
        if logits.shape[1] != self.num_logits:
            extra = ''
            if self.uncalibrated_columns:
                extra = (f' = num_classes {self.num_classes} + '
                         f'{len(self.uncalibrated_columns)} uncalibrated '
                         f'{self.uncalibrated_columns}')
            raise ValueError(
                f'{type(self).__name__} expected {self.num_logits} logit '
                f'columns{extra} on dim 1, but got {logits.shape[1]} '
                f'(logits shape {tuple(logits.shape)})')
        if self.training and not self._training_checked:
            self._check_training(logits, feats)
        if autocast_enabled(logits.device.type):
            # Mixed precision: sigma, the scale and the margin in float32
            # (docs/performance.md); the calibrated logits are float32.
            with fp32_region(logits):
                logits, feats = to_fp32(logits), to_fp32(feats)
                return self.calibrate(logits,
                                      *self.get_terms(logits, feats, **kwargs))
        return self.calibrate(logits, *self.get_terms(logits, feats, **kwargs))

    def _check_training(self, logits: Tensor, feats: Optional[Tensor]) -> None:
        """Stop a stage 2 that trains the network before the calibration
        because DisAlignFreezeHook is missing: after a checkpoint was
        loaded, unless the hook planned what trains or ``joint_training``
        says so, the first backward pass that reaches the inputs of the
        calibration raises. Python flags and an autograd hook only, no
        host-device sync; a forward without backward (evaluation in
        training mode) is not refused.
        """
        if (not torch.is_grad_enabled() or not self.loaded_weights
                or self.joint_training or self.freeze_planned):
            return
        if not any(p.requires_grad for p in self.parameters()):
            self._training_checked = True  # post-hoc: nothing to train
            return
        upstream = [(name, tensor)
                    for name, tensor in (('logits', logits), ('feats', feats))
                    if tensor is not None and tensor.requires_grad]
        if not upstream:
            self._training_checked = True  # the network before is frozen
            return
        names = ' and '.join(name for name, _ in upstream)
        upstream[0][1].register_hook(lambda grad: self._refuse_training(names))

    def _refuse_training(self, names: str) -> None:
        name = type(self).__name__
        raise ValueError(
            f'{name}: the model was loaded from a checkpoint (load_from / '
            'resume) and trains with the network before the calibration '
            f'(its {names} require grad), but no DisAlignFreezeHook froze '
            'it: this stage 2 would fine-tune the whole stage-1 network. '
            'Add the hook to the config: '
            "custom_hooks = [dict(type='DisAlignFreezeHook')] (the "
            'shipped stage-2 schedules in configs/<task>/_base_/schedules/ '
            'have it; a config that sets custom_hooks replaces that list, '
            "so extend it: custom_hooks = _base_.custom_hooks + [...]). If "
            'the whole network is meant to train with the calibration, say '
            f"so: calibration=dict(type='{name}', ..., "
            'joint_training=True). See docs/stage2.md.')

    def extra_repr(self) -> str:
        s = f'num_classes={self.num_classes}'
        if self.uncalibrated_columns:
            s += f', uncalibrated_columns={self.uncalibrated_columns}'
        return s


@MODELS.register_module()
class DisAlignCalibration(BaseCalibration):
    """DisAlign adaptive calibration (paper eq. 6).

    ``sigma(x) = sigmoid(confidence(x))`` from the classifier input ``x``:
    an ``nn.Linear(C, 1)``, or with ``dense=True`` an ``nn.Conv2d(C, 1, 1)``
    (a per-pixel sigma); with a norm and/or activation an ``nn.Sequential``
    of ``fc``/``conv``, the norm and ``activate``. The initialisation of
    each ``init_mode`` is described in docs/calibration.md.

    Args:
        in_channels (int): Channels ``C`` of the feature.
        dense (bool): ``(N, C, H, W)`` inputs and a 1x1 conv; the logits
            are ``(N, K, H, W)`` or ``(N, K, A, H, W)`` (``A`` anchors per
            location sharing one sigma). Defaults to False.
        init_mode (str): ``'identity'`` or ``'reference_cls'``.
            Defaults to 'identity'.
        normalize_feature (bool): Sigma from the L2-normalised feature, as
            the reference cosine classification head. Defaults to False.
        confidence_norm_cfg (dict, optional): mmcv norm config before the
            sigmoid; for non-dense inputs ``'BN'`` means ``BatchNorm1d``.
            Defaults to None.
        confidence_act_cfg (dict, optional): mmcv activation after the norm.
            Defaults to None.
        alpha_init (float, optional): Overrides the mode's alpha.
            Defaults to None.
        beta_init (float, optional): Overrides the mode's beta.
            Defaults to None.
        confidence_init (dict, optional): mmengine weight-init config of
            the confidence layer instead of the mode's. Defaults to None.
        decay_mode (str): The learnable magnitude parameter, i.e. what a
            weight decay pulls to 0. ``'alpha'``: ``alpha`` itself.
            ``'reference'``: the reference code's ``logit_scale``, stored
            as ``scale``: ``alpha + 1`` with ``init_mode='identity'``
            (the paper form of the reference detection and segmentation
            heads), ``alpha`` with ``'reference_cls'``. See
            docs/reference.md. Defaults to 'alpha'.
        Others: see :class:`BaseCalibration`; an ``init_cfg`` replaces
            the built-in initialisation.
    """

    init_modes = ('identity', 'reference_cls')
    decay_modes = ('alpha', 'reference')

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
                 decay_mode: str = 'alpha',
                 init_cfg: Optional[Union[dict, list]] = None,
                 joint_training: bool = False) -> None:
        super().__init__(num_classes, uncalibrated_columns, init_cfg,
                         joint_training)
        if in_channels < 1:
            raise ValueError(
                f'in_channels must be >= 1, but got {in_channels}')
        if init_mode not in self.init_modes:
            raise ValueError(f'init_mode must be one of {self.init_modes}, '
                             f'but got {init_mode!r}')
        if decay_mode not in self.decay_modes:
            raise ValueError(f'decay_mode must be one of {self.decay_modes}, '
                             f'but got {decay_mode!r}')
        self.in_channels = in_channels
        self.dense = dense
        self.init_mode = init_mode
        self.decay_mode = decay_mode
        #: ``scale - alpha`` in ``decay_mode='reference'``.
        self.scale_offset = 1.0 if init_mode == 'identity' else 0.0
        self.normalize_feature = normalize_feature
        if alpha_init is None:
            alpha_init = 1.0 if init_mode == 'reference_cls' else 0.0
        self.alpha_init = _finite('alpha_init', alpha_init)
        self.beta_init = _finite('beta_init', beta_init or 0.0)
        self.confidence_init = copy.deepcopy(confidence_init)
        # Running statistic of sigma over the training forwards (sum of
        # the per-forward means, number of forwards); non-persistent:
        # state dicts and checkpoints do not change.
        self.register_buffer('sigma_sum', torch.zeros(()), persistent=False)
        self.register_buffer('sigma_count', torch.zeros(()), persistent=False)

        if decay_mode == 'reference':
            self.scale = nn.Parameter(torch.empty(num_classes))
        else:
            self.alpha = nn.Parameter(torch.empty(num_classes))
        self.beta = nn.Parameter(torch.empty(num_classes))
        self._act_cfg = confidence_act_cfg
        self._norm_name = None
        layer_cls = nn.Conv2d if dense else nn.Linear
        args = (in_channels, 1, 1) if dense else (in_channels, 1)
        layer = layer_cls(*args, bias=confidence_norm_cfg is None)
        if confidence_norm_cfg is None and confidence_act_cfg is None:
            self.confidence = layer
        else:
            from mmcv.cnn import build_activation_layer, build_norm_layer
            modules = [('conv' if dense else 'fc', layer)]
            if confidence_norm_cfg is not None:
                norm_cfg = dict(confidence_norm_cfg)
                if not dense and norm_cfg['type'] == 'BN':
                    norm_cfg['type'] = 'BN1d'
                self._norm_name, norm = build_norm_layer(norm_cfg, 1)
                modules.append((self._norm_name, norm))
            if confidence_act_cfg is not None:
                modules.append(
                    ('activate', build_activation_layer(confidence_act_cfg)))
            self.confidence = nn.Sequential(OrderedDict(modules))
        self.reset_calibration()

    @property
    def confidence_layer(self) -> nn.Module:
        """The linear / 1x1 conv layer of :attr:`confidence`."""
        if isinstance(self.confidence, nn.Sequential):
            return self.confidence[0]
        return self.confidence

    @torch.no_grad()
    def reset_calibration(self) -> None:
        """(Re)apply the ``init_mode`` initialisation (and overrides)."""
        if self.decay_mode == 'reference':
            self.scale.fill_(self.alpha_init + self.scale_offset)
        else:
            self.alpha.fill_(self.alpha_init)
        self.beta.fill_(self.beta_init)
        layer = self.confidence_layer
        if self._norm_name is not None:
            constant_init(getattr(self.confidence, self._norm_name), 1)
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
        elif self._norm_name is not None:
            # mmcv ConvModule default (reference segmentation head)
            act_cfg = self._act_cfg or {}
            if act_cfg.get('type') == 'LeakyReLU':
                kaiming_init(
                    layer,
                    a=act_cfg.get('negative_slope', 0.01),
                    nonlinearity='leaky_relu')
            else:
                kaiming_init(layer)
        else:
            normal_init(layer, std=0.01)

    def _check_feats(self, logits: Tensor, feats: Optional[Tensor]) -> None:
        """Shape checks where torch would broadcast silently."""
        name = type(self).__name__
        if feats is None:
            raise ValueError(f'{name} needs the classifier input feature: '
                             'call it as calibration(logits, feats)')
        dims, mode = (4, 'dense=True') if self.dense else (2, 'dense=False')
        shape = '(N, K, H, W)' if self.dense else '(N, K)'
        # Dense logits may carry extra dims before H, W (the anchors of a
        # one-stage detector): (N, K, A, H, W), sigma shared over them.
        if logits.dim() != dims and not (self.dense and logits.dim() > 4):
            hint = ('use dense=False for (N, K) logits' if self.dense else
                    'set dense=True for dense (N, K, H, W) logits')
            raise ValueError(f'{name}({mode}) expects logits {shape}, but '
                             f'got shape {tuple(logits.shape)}; {hint}')
        if feats.dim() != dims:
            raise ValueError(
                f'{name}({mode}) expects feats {shape.replace("K", "C")}, '
                f'but got shape {tuple(feats.shape)}')
        if feats.shape[0] != logits.shape[0]:
            raise ValueError(
                f'{name}: feats batch size {feats.shape[0]} does not match '
                f'logits batch size {logits.shape[0]}')
        if self.dense and feats.shape[2:] != logits.shape[-2:]:
            raise ValueError(
                f'{name}: feats spatial size {tuple(feats.shape[2:])} does '
                f'not match logits spatial size {tuple(logits.shape[-2:])}; '
                'compute the calibration at the resolution of the logits '
                '(no interpolation is done here)')

    def get_alpha(self) -> Tensor:
        """``alpha`` of eq. 6 in either ``decay_mode`` (differentiable)."""
        if self.decay_mode == 'reference':
            if self.scale_offset:
                return self.scale - self.scale_offset
            return self.scale
        return self.alpha

    def get_confidence(self, feats: Tensor) -> Tensor:
        """sigma = sigmoid(confidence(x)): ``(N, 1)`` or ``(N, 1, H, W)``."""
        if self.normalize_feature:
            feats = F.normalize(feats, p=2, dim=1)
        return torch.sigmoid(self.confidence(feats))

    @torch.no_grad()
    def _track_sigma(self, sigma: Tensor) -> None:
        """Add the mean sigma of this training forward (over samples,
        pixels or RoIs) to :attr:`sigma_sum`; on the device, no sync."""
        self.sigma_sum.add_(sigma.detach().float().mean())
        self.sigma_count.add_(1)

    def reset_sigma_statistic(self) -> None:
        """Start a new window of :meth:`mean_sigma` (no sync)."""
        self.sigma_sum.zero_()
        self.sigma_count.zero_()

    def mean_sigma(self) -> Tensor:
        """The mean sigma of the training forwards since the last
        :meth:`reset_sigma_statistic`: the mean over the forwards of each
        forward's mean sigma; NaN before the first. A 0-dim tensor on the
        device (reading it synchronises).

        A mean near 0 means the calibration is switched off: the
        confidence layer drove sigmoid into saturation, where its gradient
        vanishes, and the model predicts like stage 1. DisAlignFreezeHook
        checks it (docs/stage2.md). Under DDP the buffers are broadcast
        from rank 0 at every forward (``broadcast_buffers=True``, the
        default), so each rank reads rank 0's statistic plus its own
        latest forward; a check on any rank sees the same collapse.
        """
        return self.sigma_sum / self.sigma_count

    def get_terms(self, logits: Tensor, feats: Optional[Tensor],
                  **kwargs) -> CalibTerms:
        self._check_feats(logits, feats)
        sigma = self.get_confidence(feats)
        if self.training:
            self._track_sigma(sigma)
        if sigma.dim() < logits.dim():  # (N, 1, H, W) -> (N, 1, 1.., H, W)
            sigma = sigma.view(sigma.shape[:2] + (1, ) * (logits.dim() - 4) +
                               sigma.shape[2:])
        return self.get_alpha(), self.beta, sigma

    def extra_repr(self) -> str:
        s = (f'{super().extra_repr()}, in_channels={self.in_channels}, '
             f'dense={self.dense}, init_mode={self.init_mode!r}, '
             f'normalize_feature={self.normalize_feature}')
        if self.decay_mode != 'alpha':
            s += f', decay_mode={self.decay_mode!r}'
        return s


@MODELS.register_module()
class LWSCalibration(BaseCalibration):
    """Learnable weight scaling: ``zhat_j = (1 + alpha_j) * z_j``.

    Args:
        alpha_init (float): Initial magnitude offset. Defaults to 0.
        Others: see :class:`BaseCalibration`.
    """

    def __init__(self,
                 num_classes: int,
                 uncalibrated_columns: Sequence[int] = (),
                 alpha_init: float = 0.0,
                 init_cfg: Optional[Union[dict, list]] = None,
                 joint_training: bool = False) -> None:
        super().__init__(num_classes, uncalibrated_columns, init_cfg,
                         joint_training)
        self.alpha_init = _finite('alpha_init', alpha_init)
        self.alpha = nn.Parameter(torch.full((num_classes, ), self.alpha_init))

    @torch.no_grad()
    def reset_calibration(self) -> None:
        self.alpha.fill_(self.alpha_init)

    def get_terms(self, logits: Tensor, feats: Optional[Tensor],
                  **kwargs) -> CalibTerms:
        return self.alpha, None, None


@MODELS.register_module()
class TauNormCalibration(BaseCalibration):
    """tau-normalisation: ``zhat_j = z_j / ||w_j||^tau``, nothing learned.

    Called with ``classifier_weight`` (``(K, D, ...)`` or ``(L, D, ...)``).

    Args:
        tau (float): The exponent. Defaults to 1.0.
        Others: see :class:`BaseCalibration`.
    """

    def __init__(self,
                 num_classes: int,
                 tau: float = 1.0,
                 uncalibrated_columns: Sequence[int] = (),
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(num_classes, uncalibrated_columns, init_cfg)
        self.tau = _finite('tau', tau)
        self._checked = (None, None)

    def _check_norms(self, weight: Tensor, norms: Tensor) -> None:
        """Raise on zero-norm rows (an infinite scale). Reading the norms
        synchronises host and device: done only when the weight changed
        (another tensor, or an in-place update of its version)."""
        ref, version = self._checked
        if ref is not None and ref() is weight and version == weight._version:
            return
        zero = torch.nonzero(norms == 0).flatten().tolist()
        if zero:
            raise ValueError(f'{type(self).__name__}: classifier weight rows '
                             f'of calibrated classes {zero} have zero norm')
        self._checked = (weakref.ref(weight), weight._version)

    def get_terms(self,
                  logits: Tensor,
                  feats: Optional[Tensor],
                  classifier_weight: Optional[Tensor] = None,
                  **kwargs) -> CalibTerms:
        if classifier_weight is None:
            raise ValueError(
                f'{type(self).__name__} needs the classifier weight: call it '
                'as calibration(logits, feats, classifier_weight=W) with W '
                f'of shape ({self.num_classes}, D)')
        weight = classifier_weight.detach()
        # (L + 1, D) would select rows silently with uncalibrated columns.
        if weight.dim() < 2 or weight.shape[0] not in (self.num_classes,
                                                       self.num_logits):
            allowed = f'{self.num_classes}'
            if self.num_logits != self.num_classes:
                allowed += f' or {self.num_logits}'
            raise ValueError(
                f'{type(self).__name__} expected classifier_weight of shape '
                f'({allowed}, D, ...), but got {tuple(weight.shape)}')
        norms = weight.flatten(1).norm(p=2, dim=1)
        if weight.shape[0] != self.num_classes:
            norms = norms.index_select(0, self.calibrated_index)
        self._check_norms(classifier_weight, norms)
        return (norms.pow(-self.tau) - 1).to(logits.dtype), None, None

    def extra_repr(self) -> str:
        return f'{super().extra_repr()}, tau={self.tau}'


@MODELS.register_module()
class LogitAdjustCalibration(BaseCalibration):
    """Post-hoc logit adjustment: ``zhat_j = z_j - tau * log(n_j / n)``.

    Args:
        class_freq (list | str): Per-class counts of the calibrated classes
            or a class-frequency file, as
            :func:`~mmdisalign.utils.load_class_freq` reads them.
        tau (float): The adjustment strength. Defaults to 1.0.
        class_freq_key (str): The list read from a file.
            Defaults to 'counts'.
        Others: see :class:`BaseCalibration`.
    """

    def __init__(self,
                 num_classes: int,
                 class_freq: Union[Sequence[float], str],
                 tau: float = 1.0,
                 uncalibrated_columns: Sequence[int] = (),
                 class_freq_key: str = 'counts',
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(num_classes, uncalibrated_columns, init_cfg)
        self.tau = _finite('tau', tau)
        # Rejects a wrong class count and zero or non-finite counts.
        freq = torch.as_tensor(
            load_class_freq(
                class_freq, num_classes=num_classes, key=class_freq_key))
        margin = -self.tau * (freq / freq.sum()).log()
        self.register_buffer('margin', margin.float(), persistent=False)
        if isinstance(class_freq, dict):
            class_freq = class_freq.get('file')
        #: The class-frequency file read (ClassFreqCheckHook checks its
        #: class order), or None for a list.
        self.class_freq_file = os.fspath(class_freq) if isinstance(
            class_freq, (str, os.PathLike)) else None

    def get_terms(self, logits: Tensor, feats: Optional[Tensor],
                  **kwargs) -> CalibTerms:
        return None, self.margin, None

    def extra_repr(self) -> str:
        return f'{super().extra_repr()}, tau={self.tau}'
