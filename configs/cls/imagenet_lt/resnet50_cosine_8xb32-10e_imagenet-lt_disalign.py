# Stage 2 (DisAlign) on ImageNet-LT, cosine classifier: the frozen stage-1
# CosineClsHead (``fc.weight``, ``scale``) plus a trained calibration whose
# confidence is computed from the L2-normalised feature. Same schedule as
# the linear DisAlign config.
_base_ = './resnet50_8xb32-10e_imagenet-lt_disalign.py'

load_from = 'work_dirs/resnet50_cosine_8xb32-90e_imagenet-lt/epoch_90.pth'

model = dict(head=dict(type='DisAlignCosineClsHead'))
