"""The new user's set (#15), written as a user would in a file of their own, at small sizes for tests.

Each class takes its sizes as keyword arguments; the defaults are the small
test sizes. Used with ``deepcompress compress model.pt --arch user_set:Class``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.down is None else self.down(x)))


class ResNet18(nn.Module):
    """ResNet-18 shaped: a 7x7 stem, four stages of two basic blocks, global pooling, fc."""

    def __init__(self, width: int = 16, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        blocks, cin = [], width
        for i, cout in enumerate((width, 2 * width, 4 * width, 8 * width)):
            blocks += [BasicBlock(cin, cout, 1 if i == 0 else 2), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(self.layers(self.stem(x)).mean(dim=(2, 3)))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers = []
        if expand != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
                   nn.ReLU6(), nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 shaped: inverted residuals with depthwise convs, a 1x1 head conv, fc."""

    def __init__(self, width: int = 16, num_classes: int = 10) -> None:
        super().__init__()
        cfg = [(1, width, 1, 1), (6, width + 8, 2, 2), (6, 2 * width, 2, 2), (6, 4 * width, 2, 2),
               (6, 6 * width, 1, 1)]
        layers = [nn.Conv2d(3, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU6()]
        cin = width
        for t, c, n, s in cfg:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers += [nn.Conv2d(cin, 16 * width, 1, bias=False), nn.BatchNorm2d(16 * width), nn.ReLU6()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(16 * width, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).mean(dim=(2, 3)))


class TiedGPT(nn.Module):
    """A GPT: token and position embeddings, nn.TransformerEncoder layers with a causal mask, tied lm_head."""

    def __init__(self, vocab: int = 256, d: int = 64, n_layer: int = 6, n_head: int = 4, block: int = 32) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(block, d)
        layer = nn.TransformerEncoderLayer(d, n_head, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, n_layer, enable_nested_tensor=False)
        self.ln = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.tok.weight

    def forward(self, idx):
        t = idx.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(t)
        x = self.tok(idx) + self.pos(torch.arange(t))[None]
        return self.lm_head(self.ln(self.blocks(x, mask=mask, is_causal=True)))


class BertLike(nn.Module):
    """A BERT-like encoder: embeddings, nn.TransformerEncoder, a pooled classifier."""

    def __init__(self, vocab: int = 512, d: int = 64, n_layer: int = 2, n_head: int = 4, block: int = 32,
                 num_classes: int = 2) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(block, d)
        layer = nn.TransformerEncoderLayer(d, n_head, 4 * d, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layer, enable_nested_tensor=False)
        self.cls = nn.Linear(d, num_classes)

    def forward(self, idx):
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))[None]
        return self.cls(self.encoder(x)[:, 0])


class LSTMTagger(nn.Module):
    """An embedding, a two-layer bidirectional LSTM, a GRU cell and a linear head."""

    def __init__(self, vocab: int = 512, d: int = 64, hidden: int = 64, num_classes: int = 8) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.lstm = nn.LSTM(d, hidden, num_layers=2, batch_first=True, bidirectional=True)
        self.cell = nn.GRUCell(2 * hidden, hidden)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, idx):
        seq, _ = self.lstm(self.emb(idx))
        h = self.cell(seq[:, -1])
        return self.head(h)
