"""The SCNN-like memory-reference model on small cases computed by hand (docs/memory_model.md)."""

from __future__ import annotations

import numpy as np
import pytest

from deepcompress.errors import ConfigError
from deepcompress.report.memrefs import MemRefs, conv_memory_refs

ELEMENT = (1, 1, 1, 1)


def test_two_filters_one_channel_all_kept():
    """K=2, C=1, 1x2 kernels, 3x3 input, 3x2 output: 4 weights form one vector of F=4."""
    mask = np.ones((2, 1, 1, 2), dtype=bool)
    refs = conv_memory_refs(mask, ELEMENT, (3, 3), (3, 2))
    # weights 4, index 4 (one per weight), activations ceil(4/4) * 9, outputs 2 * 3 * 2, MACs 4 * 6
    # window reuse: each of the 4 single weights reads its 3x2 output window of inputs
    assert refs == MemRefs(weights=4, index=4, activations=9, outputs=12, macs=24, activations_window=4 * 3 * 2)
    assert refs.total == 4 + 4 + 9 + 12


def test_vector_blocks_need_one_index_per_block():
    mask = np.ones((2, 1, 1, 2), dtype=bool)
    refs = conv_memory_refs(mask, (1, 1, 1, 2), (3, 3), (3, 2))
    assert (refs.weights, refs.index, refs.activations) == (4, 2, 9)


def test_weight_vector_width_sets_activation_rereads():
    """With F=1 every kept weight streams the 9 activations of its channel once."""
    mask = np.ones((2, 1, 1, 2), dtype=bool)
    assert conv_memory_refs(mask, ELEMENT, (3, 3), (3, 2), weight_vector=1).activations == 4 * 9


def test_output_groups_split_the_activation_reads():
    """Kc=1: each filter is its own group with 2 kept weights -> ceil(2/4)=1 pass each -> 2 * 9."""
    mask = np.ones((2, 1, 1, 2), dtype=bool)
    assert conv_memory_refs(mask, ELEMENT, (3, 3), (3, 2), group_outputs=1).activations == 18


def test_pruned_filter_skips_its_outputs():
    mask = np.ones((2, 1, 1, 2), dtype=bool)
    mask[1] = False
    refs = conv_memory_refs(mask, (1, 1, 1, 2), (3, 3), (3, 2))
    # window: the one kept 1x2 vector slides over 3 rows x (2 - 1 + 2) columns
    assert refs == MemRefs(weights=2, index=1, activations=9, outputs=6, macs=12, activations_window=3 * 3)


def test_input_channel_without_kept_weights_is_not_read():
    """K=1, C=2, 1x1 kernels, channel 1 pruned: only channel 0's 4x5 plane is read."""
    mask = np.array([True, False]).reshape(1, 2, 1, 1)
    refs = conv_memory_refs(mask, ELEMENT, (4, 5), (4, 5))
    assert refs == MemRefs(weights=1, index=1, activations=20, outputs=20, macs=20, activations_window=20)


def test_fragmented_vectors_cost_more_than_packed_ones():
    """Five kept weights spread over 5 channels need 5 passes; packed into one channel they need 2."""
    spread = np.zeros((1, 5, 1, 5), dtype=bool)
    spread[0, :, 0, 0] = True
    packed = np.zeros((1, 5, 1, 5), dtype=bool)
    packed[0, 0, 0, :] = True
    a = conv_memory_refs(spread, ELEMENT, (2, 2), (2, 2))
    b = conv_memory_refs(packed, (1, 1, 1, 5), (2, 2), (2, 2))
    assert (a.activations, b.activations) == (5 * 4, 2 * 4)
    assert (a.index, b.index) == (5, 1)
    assert a.weights == b.weights == 5


def test_tiles_multiply_weight_and_index_reads():
    mask = np.ones((2, 1, 1, 2), dtype=bool)
    refs = conv_memory_refs(mask, ELEMENT, (3, 3), (3, 2), tiles=3)
    assert (refs.weights, refs.index, refs.activations) == (12, 12, 9)


def test_window_reuse_of_kernels_and_filters_with_stride():
    """A kept 3x3 kernel over a 2x2 output at stride 2 reads (2-1)*2+3 = 5 rows x 5 columns once;
    a kept 2-channel filter reads that for both channels."""
    kernel = np.ones((1, 1, 3, 3), dtype=bool)
    assert conv_memory_refs(kernel, (1, 1, 3, 3), (5, 5), (2, 2), stride=(2, 2)).activations_window == 25
    assert conv_memory_refs(kernel, ELEMENT, (5, 5), (2, 2), stride=(2, 2)).activations_window == 9 * 4
    filt = np.ones((1, 2, 3, 3), dtype=bool)
    assert conv_memory_refs(filt, (1, 2, 3, 3), (5, 5), (2, 2), stride=(2, 2)).activations_window == 2 * 25


def test_sum_and_json():
    a = MemRefs(1, 2, 3, 4, 5, 6)
    total = a + a
    assert total == MemRefs(2, 4, 6, 8, 10, 12)
    assert total.to_json()["total"] == 2 + 4 + 6 + 8
    assert total.to_json()["total_window"] == 2 + 4 + 12 + 8


@pytest.mark.parametrize(
    "mask, block, message",
    [
        (np.ones((2, 2), dtype=bool), (1, 1), "4-D"),
        (np.ones((1, 1, 1, 3), dtype=bool), (1, 1, 1, 2), "does not tile"),
        (np.array([True, False]).reshape(1, 1, 1, 2), (1, 1, 1, 2), "not constant"),
    ],
)
def test_bad_masks_are_config_errors(mask, block, message):
    with pytest.raises(ConfigError, match=message):
        conv_memory_refs(mask, block, (3, 3), (3, 3))


def test_bad_parameters_are_config_errors():
    with pytest.raises(ConfigError, match="weight_vector"):
        conv_memory_refs(np.ones((1, 1, 1, 1), dtype=bool), ELEMENT, (1, 1), (1, 1), weight_vector=0)


def test_scnn_layer_parameters_follow_the_pe_grid_and_accumulator():
    from deepcompress.report.memrefs import SCNN

    # 32x32 output on 8x8 PEs: 4x4 tiles; with a 3x3 kernel's halo 6x6 = 36 accumulators per channel -> Kc 28
    assert SCNN.layer_params((16, 16, 3, 3), (32, 32)) == {"tiles": 64, "group_outputs": 16, "weight_vector": 4}
    assert SCNN.layer_params((64, 16, 3, 3), (32, 32))["group_outputs"] == 1024 // 36
    # 8x8 output: one output per PE, 3x3 halo 9 entries -> Kc = min(K, 113)
    assert SCNN.layer_params((64, 64, 3, 3), (8, 8)) == {"tiles": 64, "group_outputs": 64, "weight_vector": 4}
    # an output plane smaller than the grid uses fewer PEs
    assert SCNN.layer_params((8, 8, 1, 1), (3, 5))["tiles"] == 15
    assert SCNN.layer_params((4096, 8, 5, 5), (32, 32))["group_outputs"] == 1024 // 64
