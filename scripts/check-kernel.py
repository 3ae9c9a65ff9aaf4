#!/usr/bin/env python3
"""CI check of the CUDA kernel sources, on a machine without a GPU.

Compiles each kernel program with NVRTC (through ctypes) for sm_90 with
exactly the options the Swift code uses (read from
Sources/SluiceCUDA/KernelBuild.swift), and fails on any error or warning:
any non-empty NVRTC log counts as failure. The programs are the production
megakernel (Sources/SluiceCUDA/Kernels/megakernel.cu and the sluice_*.h
headers it includes, handed to NVRTC by name as `Megakernel.headers` in
KernelBuild.swift lists them) and the measurement kernels of `sluice bench`
(Sources/SluiceDiagnostics/Kernels/measure.cu, which includes megakernel.cu,
handed to NVRTC as a header with those headers, as the Swift code does).
First it checks that the headers megakernel.cu includes (directly or through
another header) are exactly those Megakernel.headers lists, and that
Package.swift embeds each. The Swift options make ptxas warn on register
spills and local-memory use, so those fail too. A second compile with
`--ptxas-options=-v` prints registers, shared memory and spills, and checks
that each program's kernels (their names read from the Swift code that loads
them) exist, that no stack frame or spill appears, and that the production
PTX has no measurement kernel.
Finally the protocol constants mirrored in the kernel (SLUICE_*, in
megakernel.cu or any of its headers) are compared with their source of truth
in Sources/SluiceCore and Sources/SluiceOps (slot, control and tenant-table
layout, scan-table header and hashing, crc32c polynomial) and
Sources/SluiceCUDA/KernelBuild.swift (launch shape, dynamic shared memory,
device state and mailbox sizes).

It installs nothing. Run it after installing NVRTC into the interpreter that
runs it, for example:

    python3 -m venv .build-ci-venv
    .build-ci-venv/bin/pip install 'nvidia-cuda-nvrtc==13.0.*'
    .build-ci-venv/bin/python scripts/check-kernel.py

`--nvrtc PATH` names libnvrtc.so.13 explicitly; `--arch sm_XY` picks another target.
"""

import argparse
import ctypes
import glob
import os
import re
import site
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNELS = os.path.join(ROOT, "Sources/SluiceCUDA/Kernels")
KERNEL = os.path.join(KERNELS, "megakernel.cu")
PACKAGE = os.path.join(ROOT, "Package.swift")
MEASURE = os.path.join(ROOT, "Sources/SluiceDiagnostics/Kernels/measure.cu")
BUILD_SWIFT = os.path.join(ROOT, "Sources/SluiceCUDA/KernelBuild.swift")
MEASURE_SWIFT = os.path.join(ROOT, "Sources/SluiceDiagnostics/CUDAMeasurements.swift")
CORE = os.path.join(ROOT, "Sources/SluiceCore")


def fail(message):
    print(f"check-kernel: FAIL: {message}")
    sys.exit(1)


def find_nvrtc(explicit):
    if explicit:
        return explicit
    roots = list(site.getsitepackages()) + [site.getusersitepackages()] + sys.path
    layouts = ("nvidia/cu13/lib/libnvrtc.so.13", "nvidia/cuda_nvrtc/lib/libnvrtc.so.13")
    for root in roots:
        for layout in layouts:
            path = os.path.join(root, layout)
            if os.path.isfile(path):
                return path
    fail("libnvrtc.so.13 not found in this interpreter's site-packages "
         f"(looked for {' or '.join(layouts)}); install nvidia-cuda-nvrtc==13.0.* or pass --nvrtc PATH")


def load_nvrtc(path):
    # NVRTC dlopens its builtins library by soname; load it from the same
    # folder first (RTLD_GLOBAL) so that no LD_LIBRARY_PATH is needed.
    for builtins in sorted(glob.glob(os.path.join(os.path.dirname(path), "libnvrtc-builtins.so.*"))):
        if ".alt." not in builtins:
            ctypes.CDLL(builtins, mode=ctypes.RTLD_GLOBAL)
    lib = ctypes.CDLL(path)
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p
    return lib


def swift_options():
    text = open(BUILD_SWIFT, encoding="utf-8").read()
    match = re.search(r"static let nvrtcOptions: \[String\] = \[(.*?)\]", text, re.S)
    if not match:
        fail(f"could not find `static let nvrtcOptions: [String] = [...]` in {BUILD_SWIFT}")
    return re.findall(r'"((?:[^"\\]|\\.)*)"', match.group(1))


def includes(text):
    """The names of the `#include "NAME"` lines of a source (bytes)."""
    return re.findall(rb'^[ \t]*#[ \t]*include[ \t]+"([^"]+)"', text, re.M)


def megakernel_headers():
    """The headers KernelBuild.swift hands NVRTC with megakernel.cu, as {name: bytes}, after
    checking that they are exactly the ones megakernel.cu includes, directly or through one
    another, and that Package.swift embeds each."""
    text = open(BUILD_SWIFT, encoding="utf-8").read()
    match = re.search(r"static var headers: \[KernelSource\] \{(.*?)\n    \}", text, re.S)
    if not match:
        fail(f"could not find `static var headers: [KernelSource]` (Megakernel.headers) in {BUILD_SWIFT}")
    listed = re.findall(r'KernelSource\(name: "([^"]+)", text: PackageResources\.(\w+)\)', match.group(1))
    if not listed:
        fail(f"Megakernel.headers in {BUILD_SWIFT} names no header")
    for name, accessor in listed:
        if accessor != re.sub(r"[^A-Za-z0-9]", "_", name):
            fail(f"Megakernel.headers gives {name} the text of PackageResources.{accessor}")
    names = [name for name, _ in listed]
    if len(set(names)) != len(names):
        fail(f"Megakernel.headers names a header twice: {names}")
    headers = {}
    for name in names:
        path = os.path.join(KERNELS, name)
        if not os.path.isfile(path):
            fail(f"Megakernel.headers names {name}, which is not in {KERNELS}")
        headers[name] = open(path, "rb").read()
    # Every header reachable from megakernel.cu (a header missing from the
    # list would fail only at run time, on the GPU machine, as NVRTC finds
    # nothing on the file system).
    reached, pending = set(), [n.decode() for n in includes(open(KERNEL, "rb").read())]
    while pending:
        name = pending.pop()
        if name in reached:
            continue
        reached.add(name)
        if name not in headers:
            fail(f"megakernel.cu includes {name} (directly or through a header), which Megakernel.headers does not list")
        pending += [n.decode() for n in includes(headers[name])]
    unused = sorted(set(names) - reached)
    if unused:
        fail(f"Megakernel.headers lists {', '.join(unused)}, which megakernel.cu never includes")
    package = open(PACKAGE, encoding="utf-8").read()
    for name in names:
        if f'.embedInCode("Kernels/{name}")' not in package:
            fail(f'Package.swift does not embed Kernels/{name} (.embedInCode("Kernels/{name}") on SluiceCUDA)')
    return headers


class Compiled:
    def __init__(self, result, log, ptx, cubin):
        self.result, self.log, self.ptx, self.cubin = result, log, ptx, cubin


def kernel_names(path, pattern):
    names = re.findall(pattern, open(path, encoding="utf-8").read())
    if not names:
        fail(f"no kernel names matching {pattern!r} in {path}")
    return names


def compile_kernel(lib, name, source, headers, options):
    """Compiles `source` (bytes) named `name`; `headers` maps include names to their bytes."""
    def check(result, call):
        if result != 0:
            fail(f"{call} returned {result} ({lib.nvrtcGetErrorString(result).decode()})")

    program = ctypes.c_void_p()
    header_texts = (ctypes.c_char_p * max(len(headers), 1))(*headers.values())
    header_names = (ctypes.c_char_p * max(len(headers), 1))(*[n.encode() for n in headers])
    check(lib.nvrtcCreateProgram(ctypes.byref(program), source, name.encode(), len(headers),
                                 header_texts if headers else None, header_names if headers else None),
          "nvrtcCreateProgram")
    encoded = [o.encode() for o in options]
    result = lib.nvrtcCompileProgram(program, len(encoded), (ctypes.c_char_p * len(encoded))(*encoded))
    size = ctypes.c_size_t()
    check(lib.nvrtcGetProgramLogSize(program, ctypes.byref(size)), "nvrtcGetProgramLogSize")
    buffer = ctypes.create_string_buffer(size.value)
    check(lib.nvrtcGetProgramLog(program, buffer), "nvrtcGetProgramLog")
    log = buffer.value.decode(errors="replace").strip()
    ptx = cubin = b""
    if result == 0:
        check(lib.nvrtcGetPTXSize(program, ctypes.byref(size)), "nvrtcGetPTXSize")
        buffer = ctypes.create_string_buffer(size.value)
        check(lib.nvrtcGetPTX(program, buffer), "nvrtcGetPTX")
        ptx = buffer.value
        check(lib.nvrtcGetCUBINSize(program, ctypes.byref(size)), "nvrtcGetCUBINSize")
        buffer = ctypes.create_string_buffer(size.value)
        check(lib.nvrtcGetCUBIN(program, buffer), "nvrtcGetCUBIN")
        cubin = buffer.raw
    lib.nvrtcDestroyProgram(ctypes.byref(program))
    return Compiled(result, log, ptx, cubin)


# ---- protocol constants: kernel mirror vs Swift source of truth ---------------

def kernel_defines(source):
    defines = {}
    for name, value in re.findall(r"^#define[ \t]+(SLUICE_\w+)[ \t]+(0x[0-9A-Fa-f]+|\d+)(?:u|ull)?\b", source, re.M):
        if name in defines and defines[name] != int(value, 0):
            fail(f"{name} is defined twice in the megakernel's sources, as {defines[name]} and {int(value, 0)}")
        defines[name] = int(value, 0)
    return defines


def swift_enum_cases(path, enum):
    text = open(path, encoding="utf-8").read()
    start = text.find(f"enum {enum}")
    if start < 0:
        fail(f"no enum {enum} in {path}")
    body = text[start:text.find("\n}", start)]
    return {name: int(value, 0) for name, value in re.findall(r"^\s*case (\w+) = (\w+)", body, re.M)}


def snake(name):
    s = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).upper()
    return s.replace("_LOW", "_LO").replace("_HIGH", "_HI")


def swift_int(path, pattern):
    match = re.search(pattern, open(path, encoding="utf-8").read())
    if not match:
        fail(f"pattern {pattern!r} not found in {path}")
    return int(match.group(1).replace("_", ""), 0)


def check_constants(source):
    defines = kernel_defines(source)
    expected = {}
    for enum, file, prefix in (("SlotWord", "SlotLayout.swift", "SLUICE_W_"),
                               ("ControlWord", "ControlBlock.swift", "SLUICE_C_"),
                               ("SlotStatus", "SlotStatus.swift", "SLUICE_S_"),
                               ("FaultCode", "FaultCode.swift", "SLUICE_F_")):
        for name, value in swift_enum_cases(os.path.join(CORE, file), enum).items():
            expected[prefix + snake(name)] = value
    opcodes = open(os.path.join(CORE, "Opcode.swift"), encoding="utf-8").read()
    for name, value in re.findall(r"static let (\w+) = Opcode\(rawValue: (0x[0-9A-Fa-f_]+|\d+)\)", opcodes):
        expected["SLUICE_OP_" + snake(name)] = int(value.replace("_", ""), 0)
    user_range = re.search(r"userRange: ClosedRange<UInt32> = (0x[0-9A-Fa-f_]+)\.\.\.(0x[0-9A-Fa-f_]+)", opcodes)
    if not user_range:
        fail("Opcode.userRange not found in Opcode.swift")
    expected["SLUICE_OP_USER_FIRST"] = int(user_range.group(1).replace("_", ""), 0)
    expected["SLUICE_OP_USER_LAST"] = int(user_range.group(2).replace("_", ""), 0)
    expected["SLUICE_SLOT_WORDS"] = swift_int(os.path.join(CORE, "SlotLayout.swift"), r"static let count = (\d+)")
    expected["SLUICE_CONTROL_WORDS"] = swift_int(os.path.join(CORE, "ControlBlock.swift"), r"static let count = (\d+)")
    expected["SLUICE_MAGIC"] = swift_int(os.path.join(CORE, "ControlBlock.swift"), r"static let magic: UInt64 = (0x[0-9A-Fa-f_]+)")
    expected["SLUICE_FLAG_CANCEL"] = swift_int(os.path.join(CORE, "SlotLayout.swift"), r"cancelRequested: UInt32 = (\d+)")
    expected["SLUICE_SLOTS_OFFSET"] = swift_int(os.path.join(CORE, "RingGeometry.swift"), r"controlBytesPadded = (\d+)")
    expected["SLUICE_RING_ALIGNMENT"] = swift_int(os.path.join(CORE, "RingGeometry.swift"), r"static let alignment = (\d+)")
    expected["SLUICE_COUNT_RESULT_WORDS"] = swift_int(
        os.path.join(ROOT, "Sources/SluiceOps/CountOp.swift"), r"static let resultWords = (\d+)")
    ops = os.path.join(ROOT, "Sources/SluiceOps")
    scan_table = os.path.join(ops, "ScanTable.swift")
    expected["SLUICE_SCAN_MAGIC"] = swift_int(scan_table, r"static let magic: UInt32 = (0x[0-9A-Fa-f_]+)")
    expected["SLUICE_SCAN_CASE_FLAG"] = swift_int(scan_table, r"caseInsensitiveFlag: UInt32 = (\d+)")
    expected["SLUICE_SCAN_HASH_MULTIPLIER"] = swift_int(scan_table, r"hashMultiplier: UInt32 = (0x[0-9A-Fa-f_]+)")
    expected["SLUICE_SCAN_SECOND_MULTIPLIER"] = swift_int(scan_table, r"secondHashMultiplier: UInt32 = (0x[0-9A-Fa-f_]+)")
    expected["SLUICE_SCAN_LONG_MIX_MULTIPLIER"] = swift_int(scan_table, r"longMixMultiplier: UInt32 = (0x[0-9A-Fa-f_]+)")
    expected["SLUICE_SCAN_LONG_KEY_BYTES"] = swift_int(scan_table, r"static let longKeyBytes = (\d+)")
    expected["SLUICE_SCAN_MAX_LONG_KEY_OFFSET"] = swift_int(scan_table, r"static let maximumLongKeyOffset = (\d+)")
    expected["SLUICE_SCAN_HEADER_TABLE_WORDS"] = swift_int(scan_table, r"public static let words = (\d+)")
    header = re.search(r"enum Header: Int, CaseIterable \{(.*?)public static let words", open(scan_table, encoding="utf-8").read(), re.S)
    if not header:
        fail(f"ScanTable.Header not found in {scan_table}")
    names = [n.strip() for line in re.findall(r"case ([^\n]+)", header.group(1)) for n in line.split(",")]
    names = [n.split("=")[0].strip() for n in names if n.strip()]
    for kernel_name, swift_name in (("MAGIC", "magic"), ("FLAGS", "flags"), ("HASH_BITS", "hashBits"),
                                    ("FILTER_BITS", "filterBits"), ("KEY_LENGTH_MASK", "keyLengthMask"),
                                    ("FILTER_OFFSET", "filterOffset"), ("BUCKET_OFFSET", "bucketStartOffset"),
                                    ("ENTRIES_OFFSET", "entriesOffset"), ("PATTERN_OFFSET", "patternStartOffset"),
                                    ("BLOB_OFFSET", "blobOffset"), ("TOTAL_WORDS", "totalWords"),
                                    ("FILTER_PROBES", "filterProbes"), ("LONG_FILTER_BITS", "longFilterBits"),
                                    ("LONG_FILTER_OFFSET", "longFilterOffset"), ("LONG_KEY_OFFSET", "longKeyOffset")):
        if swift_name not in names:
            fail(f"ScanTable.Header has no case {swift_name}")
        expected["SLUICE_SH_" + kernel_name] = names.index(swift_name)
    scan_op = os.path.join(ops, "ScanOp.swift")
    expected["SLUICE_SCAN_HEADER_WORDS"] = swift_int(scan_op, r"static let headerWords = (\d+)")
    expected["SLUICE_SCAN_COUNT_ONLY"] = swift_int(scan_op, r"countOnlyFlag: UInt32 = (\d+)")
    directory = os.path.join(CORE, "ScanDirectory.swift")
    expected["SLUICE_SCAN_INDEX_SHIFT"] = swift_int(directory, r"indexShift: UInt32 = (\d+)")
    expected["SLUICE_SCAN_RESERVED_BITS"] = swift_int(directory, r"reservedFlagBits: UInt32 = (0x[0-9A-Fa-f_]+)")
    expected["SLUICE_SCAN_ANY_TENANT"] = swift_int(directory, r"anyTenant: UInt32 = (0x[0-9A-Fa-f_]+)")
    expected["SLUICE_CRC_RESULT_WORDS"] = swift_int(os.path.join(ops, "CRC32COp.swift"), r"static let resultWords = (\d+)")
    expected["SLUICE_CRC_POLY"] = swift_int(os.path.join(ops, "CRC32C.swift"), r"reflectedPolynomial: UInt32 = (0x[0-9A-Fa-f_]+)")
    tenants = os.path.join(CORE, "TenantTable.swift")
    expected["SLUICE_TENANT_MAGIC"] = swift_int(tenants, r"static let magic: UInt32 = (0x[0-9A-Fa-f_]+)")
    expected["SLUICE_TENANT_HEADER_WORDS"] = swift_int(tenants, r"static let headerWords = (\d+)")
    expected["SLUICE_DYNAMIC_SHARED_BYTES"] = swift_int(BUILD_SWIFT, r"static let dynamicSharedBytes = (\d+)")
    expected["SLUICE_DEVICE_STATE_BYTES"] = swift_int(BUILD_SWIFT, r"static let deviceStateBytes = (\d+)")
    expected["SLUICE_MAILBOX_WORDS"] = swift_int(BUILD_SWIFT, r"static let mailboxBytes = (\d+)") // 4
    expected["SLUICE_BLOCK_THREADS"] = swift_int(BUILD_SWIFT, r"static let blockThreads = (\d+)")
    expected["SLUICE_PARAMS_VERSION"] = swift_int(BUILD_SWIFT, r"static let paramsVersion: UInt64 = (\d+)")

    problems = []
    for name, value in sorted(expected.items()):
        if name not in defines:
            problems.append(f"{name} (= {value} in Swift) is not defined in megakernel.cu or its headers")
        elif defines[name] != value:
            problems.append(f"{name} is {defines[name]} in the megakernel's sources but {value} in Swift")
    if problems:
        fail("protocol constants disagree:\n  " + "\n  ".join(problems))
    print(f"check-kernel: {len(expected)} protocol constants match SluiceCore, SluiceOps and KernelBuild.swift")


def check_program(lib, name, source, headers, options, arch, kernels):
    """Compiles one program clean (no log), then verbose: its kernels exist, no stack frame, no spills.
    Returns its PTX."""
    plain = compile_kernel(lib, name, source, headers, options)
    if plain.log:
        print(plain.log)
    if plain.result != 0:
        fail(f"NVRTC could not compile {name} (nvrtcResult {plain.result}); log above")
    if plain.log:
        fail(f"NVRTC printed a log for {name} (warnings count as failure); log above")
    print(f"check-kernel: {name} compiled clean for {arch}: PTX {len(plain.ptx)} bytes, CUBIN {len(plain.cubin)} bytes")

    verbose = compile_kernel(lib, name, source, headers, options + ["--ptxas-options=-v"])
    if verbose.result != 0:
        print(verbose.log)
        fail(f"the verbose compile of {name} failed")
    print(verbose.log)
    ptx = plain.ptx.decode(errors="replace")
    for kernel in kernels:
        if not re.search(rf"\.entry\s+{kernel}\s*\(", ptx):
            fail(f"kernel {kernel} is missing from the PTX of {name}")
    frames = re.findall(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", verbose.log)
    if len(frames) < len(kernels):
        fail(f"ptxas printed no resource report for every kernel of {name}")
    if any(int(n) for frame in frames for n in frame):
        fail(f"a kernel of {name} uses a stack frame or spills registers; see the report above")
    print(f"check-kernel: {name}: {', '.join(kernels)}; no stack frame, no spills")
    return ptx


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nvrtc", help="path of libnvrtc.so.13 (default: the nvidia-cuda-nvrtc wheel's)")
    parser.add_argument("--arch", default="sm_90", help="target architecture (default sm_90)")
    args = parser.parse_args()

    path = find_nvrtc(args.nvrtc)
    lib = load_nvrtc(path)
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    print(f"check-kernel: NVRTC {major.value}.{minor.value} from {path}")

    source = open(KERNEL, "rb").read()
    headers = megakernel_headers()
    print(f"check-kernel: megakernel.cu includes {len(headers)} headers, all in Megakernel.headers and Package.swift: "
          f"{', '.join(headers)}")
    options = [f"--gpu-architecture={args.arch}"] + swift_options()
    print(f"check-kernel: options (as in KernelBuild.swift): {' '.join(options)}")

    production = kernel_names(BUILD_SWIFT, r'static let kernelName = "(\w+)"')
    measurement = kernel_names(MEASURE_SWIFT, r'static let \w+KernelName = "(\w+)"')
    ptx = check_program(lib, "megakernel.cu", source, headers, options, args.arch, production)
    for kernel in measurement:
        if re.search(rf"\.entry\s+{kernel}\s*\(", ptx):
            fail(f"the measurement kernel {kernel} is in the production megakernel.cu")
    check_program(lib, "measure.cu", open(MEASURE, "rb").read(), {"megakernel.cu": source, **headers}, options,
                  args.arch, measurement)

    check_constants("\n".join(text.decode() for text in [source, *headers.values()]))
    print("check-kernel: OK")


if __name__ == "__main__":
    main()
