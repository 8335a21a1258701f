"""PyTorch reference models, written from the official code's structure.

The exactness tests copy random weights into these and into ours; the
benchmark uses them as the "PyTorch CRATE" comparison row.
"""

import torch
from torch import nn

class ReferenceAttention(nn.Module):
    def __init__(self, dim, heads, dim_head):
        super().__init__()
        self.heads, self.scale = heads, dim_head**-0.5
        self.qkv = nn.Linear(dim, heads * dim_head, bias=False)
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim))

    def forward(self, x):
        b, n, _ = x.shape
        w = self.qkv(x).reshape(b, n, self.heads, -1).transpose(1, 2)
        attn = torch.softmax(w @ w.transpose(-1, -2) * self.scale, dim=-1)
        out = (attn @ w).transpose(1, 2).reshape(b, n, -1)
        return self.to_out(out)


class ReferenceISTA(nn.Module):
    def __init__(self, dim, step_size=0.1, lambd=0.1):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(dim, dim) / dim**0.5)
        self.step_size, self.lambd = step_size, lambd

    def forward(self, x):
        x1 = nn.functional.linear(x, self.weight)
        grad_1 = nn.functional.linear(x1, self.weight.t())
        grad_2 = nn.functional.linear(x, self.weight.t())
        update = self.step_size * (grad_2 - grad_1) - self.step_size * self.lambd
        return nn.functional.relu(x + update)


class PreNorm(nn.Module):
    def __init__(self, dim, fn):
        super().__init__()
        self.norm, self.fn = nn.LayerNorm(dim), fn

    def forward(self, x):
        return self.fn(self.norm(x))


class ReferenceCRATE(nn.Module):
    def __init__(self, image_size, patch, dim, depth, heads, dim_head, classes):
        super().__init__()
        self.patch = patch
        patch_dim = 3 * patch * patch
        num_patches = (image_size // patch) ** 2
        self.to_patch_embedding = nn.Sequential(
            nn.Identity(), nn.LayerNorm(patch_dim), nn.Linear(patch_dim, dim),
            nn.LayerNorm(dim),
        )
        self.pos_embedding = nn.Parameter(torch.randn(1, num_patches + 1, dim))
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.transformer = nn.Module()
        self.transformer.layers = nn.ModuleList(
            nn.ModuleList([
                PreNorm(dim, ReferenceAttention(dim, heads, dim_head)),
                PreNorm(dim, ReferenceISTA(dim)),
            ])
            for _ in range(depth)
        )
        self.mlp_head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, classes))

    def forward(self, img):  # img: [B, C, H, W]
        b, c, h, w = img.shape
        p = self.patch
        x = img.reshape(b, c, h // p, p, w // p, p)
        x = x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), -1)
        x = self.to_patch_embedding(x)
        x = torch.cat([self.cls_token.expand(b, -1, -1), x], dim=1)
        x = x + self.pos_embedding
        for attn, ff in self.transformer.layers:
            x = ff(attn(x) + x)
        return self.mlp_head(x[:, 0])


class ReferenceAlphaAttention(ReferenceAttention):
    """CRATE-alpha's MSSA: CRATE's, without a bias on `to_out`."""

    def __init__(self, dim, heads, dim_head):
        super().__init__(dim, heads, dim_head)
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim, bias=False))


class ReferenceOvercompleteISTA(nn.Module):
    def __init__(self, dim, ratio=4, eta=0.1, lmbda=0.1):
        super().__init__()
        self.D = nn.Parameter(nn.init.kaiming_uniform_(torch.empty(dim, ratio * dim)))
        self.D1 = nn.Parameter(nn.init.kaiming_uniform_(torch.empty(dim, ratio * dim)))
        self.eta, self.lmbda = eta, lmbda

    def forward(self, x):
        z1 = torch.relu(self.eta * torch.einsum("pd,nlp->nld", self.D, x) - self.eta * self.lmbda)
        dz1 = torch.einsum("dp,nlp->nld", self.D, z1)
        grad = torch.einsum("pd,nlp->nld", self.D, dz1 - x)
        z2 = torch.relu(z1 - self.eta * grad - self.eta * self.lmbda)
        return torch.einsum("dp,nlp->nld", self.D1, z2)


class PreNormAlpha(PreNorm):
    def __init__(self, dim, fn):
        super().__init__(dim, fn)
        self.norm = nn.LayerNorm(dim, eps=1e-6)


class ReferenceCRATEAlpha(nn.Module):
    """CRATE-alpha (Yang et al. 2024) as its official PyTorch code builds it."""

    def __init__(self, image_size, patch, dim, depth, heads, dim_head, classes):
        super().__init__()
        num_patches = (image_size // patch) ** 2
        self.conv1 = nn.Conv2d(3, dim, kernel_size=patch, stride=patch, bias=True)
        self.pos_embedding = nn.Parameter(torch.randn(1, num_patches + 1, dim))
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.transformer = nn.Module()
        self.transformer.layers = nn.ModuleList(
            nn.ModuleList([
                PreNormAlpha(dim, ReferenceAlphaAttention(dim, heads, dim_head)),
                PreNormAlpha(dim, ReferenceOvercompleteISTA(dim)),
            ])
            for _ in range(depth)
        )
        self.mlp_head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, classes))

    def forward(self, img):  # img: [B, C, H, W]
        x = self.conv1(img).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.pos_embedding
        for attn, ff in self.transformer.layers:
            x = attn(x) + x
            x = ff(x) + x
        return self.mlp_head(x[:, 0])
