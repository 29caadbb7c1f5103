# LVIS v1 instance segmentation with mmdet's data settings (multi-scale
# training, test at 1333x800) and instance-balanced sampling, as in both
# stages of DisAlign: the upstream ClassBalancedDataset wrapper
# (repeat-factor sampling, threshold 1e-3) is removed and the LVIS dataset
# it wraps is used as it is.
_base_ = 'mmdet::_base_/datasets/lvis_v1_instance.py'

train_dataloader = dict(
    dataset=dict(
        _base_.train_dataloader.dataset.dataset,
        _delete_=True,
        pipeline=_base_.train_pipeline))
