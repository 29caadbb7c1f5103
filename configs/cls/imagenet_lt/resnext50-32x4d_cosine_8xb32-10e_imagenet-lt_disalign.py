# Stage 2 (DisAlign) on ImageNet-LT, ResNeXt-50 (32x4d), cosine classifier.
_base_ = './resnext50-32x4d_8xb32-10e_imagenet-lt_disalign.py'

load_from = ('work_dirs/resnext50-32x4d_cosine_8xb32-90e_imagenet-lt/'
             'epoch_90.pth')

model = dict(head=dict(type='DisAlignCosineClsHead'))
