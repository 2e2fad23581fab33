"""What several reports' networks share: the feature-pair network and the unstated dropout.

Report 003's weight sharing (``FeaturePairNet``) also gives table I's count for report
000's model_1 WS; reports 000 and 004 both leave a dropout rate unstated.
"""

from __future__ import annotations

import torch
from torch import nn

from pairsearch.models.blocks import ModelOutput, split_pair

# An unstated dropout rate is torch's default, nn.Dropout()'s p = 0.5.
UNSTATED_DROPOUT = 0.5


class FeaturePairNet(nn.Module):
    """One extractor per digit, the two feature maps concatenated into the pair classifier.

    Report 003's weight sharing, and table I's count for report 000's model_1 WS.

    "Weight sharing simply splits the input 2-channel image into two 1-channel images and
    then processes them separately with the same feature extractor. The extracted two
    features are then concatenated together to pass through the classifier". With
    ``digit`` classifier: "the extracted two features are passed through the digit
    classifier separately to predict the corresponding digit labels (0-9), and the
    concatenated features are passed through the binary classifier".
    """

    def __init__(self, features: nn.Module, binary: nn.Module, digit: nn.Module | None) -> None:
        super().__init__()
        self.features = features
        self.binary = binary
        self.digit = digit

    def forward(self, x: torch.Tensor) -> ModelOutput:
        a, b = split_pair(x)
        feature_a, feature_b = self.features(torch.cat([a, b])).chunk(2)
        pair = self.binary(torch.cat([feature_a, feature_b], dim=1))
        if self.digit is None:
            return ModelOutput(pair)
        return ModelOutput(pair, self.digit(feature_a), self.digit(feature_b))
