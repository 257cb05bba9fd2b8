"""The analytic summary against the paper's Table 2 and hand arithmetic."""
import pytest

import tfvgg

# Simonyan & Zisserman (2014), Table 2 (parameters at 224x224x3, 1000 classes).
PAPER_PARAMS = {
    "A": 132_863_336,
    "A-LRN": 132_863_336,
    "B": 133_047_848,
    "C": 133_638_952,
    "D": 138_357_544,
    "E": 143_667_240,
}


@pytest.mark.parametrize("config,expected", sorted(PAPER_PARAMS.items()))
def test_parameter_counts_match_the_paper(config, expected):
    assert tfvgg.summary(config, (224, 224, 3), print_fn=None).total_params == expected


def test_vgg16_costs_15_47_g_multiply_adds():
    s = tfvgg.summary("D", (224, 224, 3), print_fn=None)
    assert round(s.total_mult_adds / 1e9, 2) == 15.47


def test_vgg16_rows_by_hand():
    rows = {r.name: r for r in tfvgg.summary("vgg16", (224, 224, 3), print_fn=None).rows}
    assert rows["conv1_1"].params == 3 * 3 * 3 * 64 + 64 == 1_792
    assert rows["conv1_1"].mult_adds == 224 * 224 * 3 * 3 * 3 * 64
    assert rows["conv1_1"].output_shape == (224, 224, 64)
    assert rows["pool5"].output_shape == (7, 7, 512)
    assert rows["flatten"].output_shape == (25_088,)
    assert rows["fc6"].params == 7 * 7 * 512 * 4096 + 4096 == 102_764_544
    assert rows["fc8"].output_shape == (1000,)


def test_config_c_has_1x1_convolutions():
    rows = {r.name: r for r in tfvgg.summary("C", print_fn=None).rows}
    assert rows["conv3_3"].kind == "conv1-256"
    assert rows["conv3_3"].params == 1 * 1 * 256 * 256 + 256
    assert rows["conv5_3"].kind == "conv1-512"


def test_a_lrn_has_one_lrn_after_conv1_1():
    names = [r.name for r in tfvgg.summary("A-LRN", print_fn=None).rows]
    assert names[:3] == ["conv1_1", "lrn1", "pool1"]
    assert sum(n.startswith("lrn") for n in names) == 1


def test_small_vgg11_for_fashion_mnist():
    s = tfvgg.summary("vgg11_small", (224, 224, 1), print_fn=None)
    rows = {r.name: r for r in s.rows}
    assert rows["conv1_1"].params == 3 * 3 * 1 * 16 + 16
    assert rows["pool5"].output_shape == (7, 7, 128)
    assert rows["fc6"].params == 7 * 7 * 128 * 4096 + 4096
    assert s.num_classes == 10


def test_alexnet_by_hand():
    s = tfvgg.summary("alexnet", (224, 224, 3), print_fn=None)
    rows = {r.name: r for r in s.rows}
    assert rows["conv1"].output_shape == (56, 56, 96)
    assert rows["pool1"].output_shape == (27, 27, 96)   # overlapping 3x3/2: (56-3)/2+1
    assert rows["pool5"].output_shape == (6, 6, 256)
    expected = (11 * 11 * 3 * 96 + 96) + (5 * 5 * 96 * 256 + 256) + (3 * 3 * 256 * 384 + 384) \
        + (3 * 3 * 384 * 384 + 384) + (3 * 3 * 384 * 256 + 256) + (6 * 6 * 256 * 4096 + 4096) \
        + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)
    assert s.total_params == expected


def test_lenet_by_hand():
    s = tfvgg.summary("lenet", (28, 28, 1), print_fn=None)
    expected = (5 * 5 * 1 * 20 + 20) + (5 * 5 * 20 * 50 + 50) + (7 * 7 * 50 * 500 + 500) + (500 * 10 + 10)
    assert s.total_params == expected == 1_256_080


def test_input_size_and_classes_are_arguments():
    s = tfvgg.summary("D", (32, 32, 1), num_classes=10, print_fn=None)
    rows = {r.name: r for r in s.rows}
    assert rows["pool5"].output_shape == (1, 1, 512)
    assert rows["conv1_1"].params == 3 * 3 * 1 * 64 + 64
    assert rows["fc8"].output_shape == (10,)


def test_summary_prints_a_table():
    lines = []
    tfvgg.summary("D", (224, 224, 3), print_fn=lines.append)
    text = "\n".join(lines)
    assert "138,357,544" in text
    assert "conv5_3" in text and "224x224x64" in text


def test_unknown_config_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown config 'F'.*A-LRN.*vgg16"):
        tfvgg.summary("F", print_fn=None)


def test_too_small_input_for_valid_pooling():
    with pytest.raises(ValueError, match="pool5.*too small"):
        tfvgg.summary("alexnet", (32, 32, 3), print_fn=None)


def test_bad_input_shape():
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        tfvgg.summary("D", (224, 224), print_fn=None)


@pytest.mark.parametrize("config", ["A-LRN", "C", "D", "alexnet", "lenet"])
def test_explained_arithmetic_evaluates_to_the_numbers(config):
    for row in tfvgg.summary(config, print_fn=None).rows:
        if row.params:
            assert eval(row.params_formula) == row.params, row        # noqa: S307 - our own digits and * +
            assert eval(row.mult_adds_formula) == row.mult_adds, row  # noqa: S307


def test_receptive_fields_of_stacked_3x3_convolutions():
    rows = {r.name: r for r in tfvgg.summary("D", print_fn=None).rows}
    assert rows["conv1_1"].receptive_field == 3
    assert rows["conv1_2"].receptive_field == 5      # two 3x3 see 5x5
    assert rows["pool1"].receptive_field == 6
    assert rows["conv3_3"].receptive_field == 40
    assert rows["pool5"].receptive_field == 212
    assert rows["fc6"].receptive_field == 0          # the whole image
    e = {r.name: r for r in tfvgg.summary("E", print_fn=None).rows}
    assert e["conv3_1"].receptive_field - e["pool2"].receptive_field == 2 * 4   # a 3x3 step at stride 4


def test_explain_prints_the_arithmetic():
    lines = []
    tfvgg.summary("D", (224, 224, 3), explain=True, print_fn=lines.append)
    text = "\n".join(lines)
    assert "parameters 3*3*3*64 + 64 = 1,792" in text
    assert "multiply-adds 224*224 * 3*3*3*64 = 86,704,128" in text
    assert "parameters 7*7*512*4096 + 4096 = 102,764,544" in text
    assert "conv1_2 (conv3-64): output 224x224x64; receptive field 5x5" in text
    assert "pool1 (maxpool2/2): output 112x112x64 [ceil(224/2) = 112]" in text
