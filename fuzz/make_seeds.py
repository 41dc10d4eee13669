#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets to fuzz/corpus/<target>/ (committed, so CI needs
no data of its own). Run with Debian's Python (python3-nibabel, python3-numpy):

    /usr/bin/python3 fuzz/make_seeds.py [--data DIR]

NIfTI seeds are the real scans of DIR (default: ../shared/data beside the repository, skipped
when absent) cut down to a few voxels: header and extensions byte for byte as the scanner
software wrote them, dims patched to the crop, then the cropped raw voxels. Hand-made files add
what the scans lack (NIfTI-2, big-endian, scaling, 1-D/2-D/4-D, every datatype, qform only).
The other targets get small hand-written files modelled on configs/ and the tests.
Output is deterministic: rerunning it changes nothing unless this script or the data changed.
"""
import argparse
import glob
import gzip
import io
import json
import os
import re
import shutil
import struct

import nibabel as nib
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
OUT = os.path.join(HERE, "corpus")

# Scans that differ in what a reader must handle (datatype, scaling, extensions, transforms).
REAL = [
    "totalsegmentator_example/aorta_report/ct_cropped.nii.gz",           # int16, sform only
    "totalsegmentator_example/example_ct.nii.gz",                        # int32
    "totalsegmentator_example/example_ct_dicom_converted.nii.gz",        # int16, inter -1024, q+s
    "totalsegmentator_example/example_seg.nii.gz",                       # uint8, 12.8 KB extension
    "totalsegmentator_example/spine_report/example_ct_vertebrae_body_seg.nii.gz",  # small ext.
    "verse_sample/sub-verse004_seg-vert_msk.nii.gz",                     # float64
]
CROP = (7, 6, 4)  # odd sizes: a reader that assumes square or even dims shows it


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def gz(data):
    # mtime=0: the same bytes on every run
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as f:
        f.write(data)
    return buf.getvalue()


def put_nifti(name, raw):
    """An uncompressed seed for both targets, its gzip for the plain one (whose reader detects
    gzip by magic)."""
    put("nifti", name + ".nii", raw)
    put("nifti", name + ".nii.gz", gz(raw))
    put("nifti_gz", name + ".nii", raw)


# ---------------------------------------------------------------- NIfTI from real scans
def crop_real(path):
    raw = gzip.open(path).read()
    img = nib.load(path)
    h = img.header
    off = int(img.dataobj.offset)
    dt = h.get_data_dtype()
    shape = img.shape
    vox = np.frombuffer(raw, dtype=dt, count=int(np.prod(shape)), offset=off)
    vox = vox.reshape(shape, order="F")
    # From the middle of the scan, where the values are tissue rather than air.
    start = [max(0, s // 2 - c // 2) for s, c in zip(shape, CROP)]
    sub = vox[tuple(slice(a, a + c) for a, c in zip(start, CROP))]
    head = bytearray(raw[:off])
    endian = "<" if h.endianness == "<" else ">"
    dims = struct.unpack_from(endian + "8h", head, 40)
    new = (dims[0],) + sub.shape + dims[1 + len(sub.shape):]
    struct.pack_into(endian + "8h", head, 40, *new)
    return bytes(head) + sub.tobytes(order="F")


# ---------------------------------------------------------------- NIfTI made by hand
def to_bytes(img):
    """The single-file bytes nibabel writes for img."""
    bio = io.BytesIO()
    fm = img.make_file_map({"image": bio, "header": bio})
    img.to_file_map(fm)
    return bio.getvalue()


def hand_made():
    rng = np.random.RandomState(0)
    aff = np.array([[-0.8, 0, 0, 90], [0, 0.8, 0, -120], [0, 0, 2.5, -300], [0, 0, 0, 1]])
    seeds = {}
    for dtype in ["uint8", "int8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
                  "float32", "float64"]:
        data = (rng.rand(5, 4, 3) * 100).astype(dtype)
        seeds["dtype_" + dtype] = to_bytes(nib.Nifti1Image(data, aff, dtype=dtype))
    # Scaled int16 in big-endian byte order, the way old scanners wrote CT.
    img = nib.Nifti1Image((rng.rand(4, 4, 3) * 1000).astype(">i2"), aff)
    img.header.set_slope_inter(2.0, -1024.0)
    seeds["bigendian_scaled"] = to_bytes(img)
    img = nib.Nifti2Image(rng.rand(3, 4, 5).astype("float32"), aff)
    seeds["nifti2"] = to_bytes(img)
    img = nib.Nifti2Image(rng.rand(3, 2, 2).astype(">f8"), aff)
    seeds["nifti2_bigendian"] = to_bytes(img)
    seeds["4d"] = to_bytes(nib.Nifti1Image(rng.rand(3, 2, 2, 2).astype("float32"), aff))
    seeds["2d"] = to_bytes(nib.Nifti1Image(rng.rand(6, 5).astype("int16"), aff))
    seeds["1d"] = to_bytes(nib.Nifti1Image(rng.rand(9).astype("uint8"), aff))
    seeds["trailing_singletons"] = to_bytes(
        nib.Nifti1Image(rng.rand(4, 3, 1, 1).astype("float32"), aff))
    # qform only, then neither transform (pixdim scaling)
    img = nib.Nifti1Image(rng.rand(3, 3, 3).astype("float32"), None)
    img.header.set_qform(aff, code=1)
    img.header.set_sform(None, code=0)
    seeds["qform_only"] = to_bytes(img)
    img = nib.Nifti1Image(rng.rand(3, 3, 3).astype("float32"), None)
    img.header.set_qform(None, code=0)
    img.header.set_sform(None, code=0)
    seeds["no_transform"] = to_bytes(img)
    # A header extension (a comment) and with it a vox_offset beyond 352.
    img = nib.Nifti1Image(rng.rand(3, 3, 2).astype("int16"), aff)
    img.header.extensions.append(nib.nifti1.Nifti1Extension("comment", b"MedConv fuzz seed"))
    seeds["extension"] = to_bytes(img)
    return seeds


# ---------------------------------------------------------------- safetensors
def safetensors(entries, metadata=None, order=None, pad=True, raw_header=None):
    """entries: (name, dtype string, shape, bytes). Offsets follow `order` (default: as given)."""
    header, blobs, off = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dt, shape, data in entries:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    js = (raw_header if raw_header is not None else json.dumps(header, separators=(",", ":"))).encode()
    if pad:
        js += b" " * (-len(js) % 8)
    return struct.pack("<Q", len(js)) + js + b"".join(blobs)


def safetensors_seeds():
    rng = np.random.RandomState(1)
    typed = {"F32": "<f4", "F64": "<f8", "I64": "<i8", "I32": "<i4", "U8": "u1", "F16": "<f2",
             "BOOL": "u1", "I16": "<i2", "U16": "<u2", "I8": "i1", "U32": "<u4", "U64": "<u8"}
    for dt, np_dt in typed.items():
        data = (rng.rand(2, 3) * (1 if dt == "BOOL" else 50)).round().astype(np_dt).tobytes()
        put("safetensors", "dtype_" + dt.lower(), safetensors([("t", dt, (2, 3), data)]))
    bf16 = (rng.rand(4).astype("<f4").view("<u4") >> 16).astype("<u2").tobytes()
    put("safetensors", "dtype_bf16", safetensors([("t", "BF16", (4,), bf16)]))
    put("safetensors", "dtype_f8", safetensors([("a", "F8_E4M3", (3,), b"\x01\x02\x03"),
                                                ("b", "F8_E5M2", (1,), b"\x04")]))
    # What a checkpoint looks like: PyTorch key names, a scalar I64, metadata.
    f4 = lambda *s: rng.rand(*s).astype("<f4").tobytes()
    put("safetensors", "checkpoint", safetensors(
        [("bn1.num_batches_tracked", "I64", (), struct.pack("<q", 7)),
         ("bn1.running_mean", "F32", (2,), f4(2)), ("bn1.weight", "F32", (2,), f4(2)),
         ("conv1.weight", "F32", (2, 1, 1, 1, 3), f4(2, 1, 1, 1, 3)),
         ("fc.bias", "F32", (3,), f4(3)), ("fc.weight", "F32", (3, 2), f4(3, 2)),
         ("layer1.0.downsample.0.weight", "F32", (2, 2, 1, 1, 1), f4(2, 2, 1, 1, 1))],
        metadata={"format": "pt", "epoch": "3", "config": "optim.lr: 0.001\ntrain.epochs: 5"}))
    put("safetensors", "empty", safetensors([]))
    put("safetensors", "metadata_only", safetensors([], metadata={"k": "v", "\u00e9": "\u2603"}))
    put("safetensors", "zero_size", safetensors([("z", "F32", (0, 3), b""), ("s", "U8", (1,), b"x")]))
    # Unaligned data (an old writer that ordered tensors by name only), unpadded header,
    # JSON escapes and whitespace in the header.
    put("safetensors", "unaligned", safetensors(
        [("a", "U8", (3,), b"abc"), ("b", "F64", (1,), struct.pack("<d", 1.5))], pad=False))
    raw = ('{ "__metadata__" : { "note" : "tab\\tquote\\"\\u00e9" } ,\n "x\\u0041" : '
           '{ "dtype" : "I32" , "shape" : [ 2 ] , "data_offsets" : [ 0 , 8 ] } }')
    put("safetensors", "escapes", safetensors([("xA", "I32", (2,), struct.pack("<2i", -1, 2))],
                                              raw_header=raw))


# ---------------------------------------------------------------- YAML config
def config_seeds():
    for f in sorted(glob.glob(os.path.join(REPO, "configs", "*.yaml"))):
        shutil.copy(f, os.path.join(OUT, "config", os.path.basename(f)))
    put("config", "empty", "")
    put("config", "overrides", "train:\n  epochs: 3\n\0optim.lr=3e-4\0data.windows=[[40, 400], [400, 2000]]"
        "\0model.name=resnet18\0train.precision=bf16\0model.in_chans=2")
    put("config", "kfold", "data:\n  split:\n    mode: kfold\n    folds: 5\n    fold: 2\n"
        "  tscore_thresholds: [-2.5, -1.0]\n  windows:\n    - [400, 2000]\n    - [50, 350]\n"
        "model:\n  in_chans: 2\n")
    put("config", "flow", "{model: {name: medconv, pretrained_skip: [fc., layer4.]}, "
        "loss: {type: class_balanced, beta: 0.999}, schedule: {name: step, step_size: 10}}\n")
    put("config", "anchors", "optim:\n  betas: &b [0.9, 0.99]\n  name: sgd\n  nesterov: true\n"
        "posthoc:\n  sweep: *b\noutput:\n  dir: \"runs/x y\"\n  keep_last: no\n")
    put("config", "errors", "optim:\n  lr: -1\n  nme: adamw\ntrain:\n  epochs: ten\n  device: tpu\n")


# ---------------------------------------------------------------- labels CSV
def labels_seeds():
    put("labels", "tscore.csv", "subject_id,tscore\nsub-001,-2.7\nsub-002,-1.4\nsub-003,0.3\n"
        "sub-004,NA\nsub-005,-2.5\nsub-006,-1.0\n")
    put("labels", "classes_semicolon.csv", "# exported by the PACS\nPatient ID;Diagnosis\n"
        "p1;osteoporosis\np2;Normal\np3;1\np4;\n")
    put("labels", "both_tab.csv", "case_id\tT-Score\tclass\nc1\t-3.1\tosteopenia\nc2\t0.5\tNA\n"
        "c3\tnan\t2\nc4\t-1.5\tNA\n")
    put("labels", "quoted.csv", "\"id\",\"t\"\r\n\"a,b\",\"-2.0\"\r\n\"say \"\"hi\"\"\",1e-1\r\n")


# ---------------------------------------------------------------- predictions CSV
def predictions_seeds():
    put("predictions", "indexed.csv", "id,label,score_0,score_1,score_2\ns1,0,2.5,-1,0.25\n"
        "s2,2,0.1,0.2,0.7\ns3,1,-0.0,1e-300,5e300\n")
    put("predictions", "named.csv", "\ufeffid,label,osteoporosis,osteopenia,normal\r\n"
        "a,normal,0.1,0.2,0.7\r\nb,Osteopenia,0.3,0.6,0.1\r\n\r\n")
    put("predictions", "binary_reordered.csv", "score_0,id,score_1,label\n0.9, x ,0.1,0\n"
        "0.4,\"y\",0.6,1\n")


# ---------------------------------------------------------------- dictionaries
def esc(token):
    """A libFuzzer dictionary entry: printable ASCII as is, everything else as \\xNN."""
    b = token if isinstance(token, bytes) else token.encode()
    return '"' + "".join(chr(c) if 32 <= c < 127 and c not in b'"\\' else "\\x%02x" % c
                         for c in b) + '"'


def put_dict(target, comment, tokens):
    d = os.path.join(HERE, "dicts")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, target + ".dict"), "w") as f:
        f.write("# %s (written by fuzz/make_seeds.py)\n" % comment)
        for t in tokens:
            f.write(esc(t) + "\n")


def dicts():
    """Tokens for -dict=. The config keys come from the schema's source, so they follow it."""
    src = open(os.path.join(REPO, "io", "config_schema.cpp")).read()
    keys = sorted(set(re.findall(r'key\("([a-z0-9_.]+)"', src)))
    words = set()
    for k in keys:
        words.add(k + "=")
        words.update(w + ": " for w in k.split("."))
    enums = re.findall(r'MC_CONFIG_ENUM\([^,]+,([^)]*)\)',
                       open(os.path.join(REPO, "io", "config.h")).read())
    for e in enums:
        words.update(re.findall(r'"([a-z0-9_]+)"', e))
    yaml = ["true", "false", "null", "~", "\n  - ", "\n    ", "[", "]", "{", "}", ", ", "&a ",
            "*a", "<<: ", "!!str ", "!!float ", "!!int ", "---\n", "...\n", "|\n", ">-\n",
            "'", '"', "# ", ".inf", "-.inf", ".nan", "0x1F", "0o17", "1e308", "-0", "\0"]
    put_dict("config", "YAML tokens, every key and enum value of io/config_schema.cpp",
             sorted(words) + yaml)
    put_dict("safetensors", "the safetensors header's JSON",
             ['"dtype"', '"shape"', '"data_offsets"', '"__metadata__"', ":", ",", "[", "]",
              "{", "}", "[]", "null", "true", "1e3", "-1", "18446744073709551616", "\\u0000",
              "\\ud83d\\ude00", "\\"] +
             ['"%s"' % d for d in ["F32", "F64", "F16", "BF16", "I64", "I32", "I16", "I8",
                                   "U8", "U16", "U32", "U64", "BOOL", "F8_E4M3", "F8_E5M2",
                                   "F8_E8M0"]])
    nifti = [b"n+1\0", b"ni1\0", b"n+2\0\r\n\x1a\n", struct.pack("<i", 348),
              struct.pack(">i", 348), struct.pack("<i", 540), struct.pack(">i", 540),
              struct.pack("<f", 352.0), struct.pack("<q", 544), b"\x1f\x8b\x08",
              struct.pack("<h", 2), struct.pack("<h", 4), struct.pack("<h", 16),
              struct.pack("<h", 64), struct.pack("<h", 512), struct.pack("<h", 768),
              struct.pack("<h", 1024), struct.pack("<h", 1280), struct.pack("<h", 32767),
              struct.pack("<f", float("nan")), struct.pack("<f", float("inf")),
              struct.pack("<f", 1e30), struct.pack("<f", -1.0), struct.pack("<i", 1)]
    put_dict("nifti", "NIfTI-1/2 header values: magics, sizes, datatypes, odd floats", nifti)
    put_dict("nifti_gz", "NIfTI-1/2 header values: magics, sizes, datatypes, odd floats", nifti)
    put_dict("labels", "labels CSV columns and values",
             ["subject_id", "patient_id", "case_id", "tscore", "T-Score", "l1_tscore", "label",
              "class", "diagnosis", "osteoporosis", "osteopenia", "normal", "NA", "NaN", "nan",
              "inf", "1e309", "-2.5", ",", ";", "\t", '"', '""', "\r\n", "# "])
    put_dict("predictions", "predictions CSV columns and values",
             ["id", "label", "score_0", "score_1", "score_10", ",", '"', "\r\n", "\ufeff",
              "osteoporosis", "osteopenia", "normal", "nan", "inf", "-0", "1e-320", "0x1p3",
              "9223372036854775808", "-1"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(os.path.dirname(REPO), "shared", "data"))
    a = ap.parse_args()
    for t in ["nifti", "nifti_gz", "safetensors", "config", "labels", "predictions"]:
        shutil.rmtree(os.path.join(OUT, t), ignore_errors=True)
        os.makedirs(os.path.join(OUT, t))
    if os.path.isdir(a.data):
        for rel in REAL:
            name = "real_" + os.path.basename(rel).replace(".nii.gz", "")
            put_nifti(name, crop_real(os.path.join(a.data, rel)))
    else:
        print("make_seeds: no data folder %s: NIfTI seeds are hand-made only" % a.data)
    for name, raw in hand_made().items():
        put_nifti(name, raw)
    safetensors_seeds()
    config_seeds()
    labels_seeds()
    predictions_seeds()
    dicts()
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(OUT) for f in fs)
    print("make_seeds: %d files, %d KB in %s" % (
        sum(len(fs) for _, _, fs in os.walk(OUT)), total // 1024, OUT))


if __name__ == "__main__":
    main()
