// sluice_protocol.h: the ring protocol's numbers, mirrored from their source
// of truth: docs/protocol.md and Sources/SluiceCore (SlotLayout.swift,
// ControlBlock.swift, SlotStatus.swift, FaultCode.swift, Opcode.swift,
// TenantTable.swift) and Sources/SluiceOps (ScanTable.swift, ScanOp.swift,
// CRC32C.swift); when one of them changes, change the matching SLUICE_*
// constant here (scripts/check-kernel.py compares them).
// Part of the megakernel: megakernel.cu includes it, and the host hands it to
// NVRTC by name with the other headers (Megakernel.headers in KernelBuild.swift).
#ifndef SLUICE_PROTOCOL_H
#define SLUICE_PROTOCOL_H

// Slot words (SlotWord), 16 x u32 per 64-byte slot.
#define SLUICE_W_STATUS            0u
#define SLUICE_W_OPCODE            1u
#define SLUICE_W_TENANT            2u
#define SLUICE_W_PRIORITY          3u
#define SLUICE_W_BUFFER_OFFSET_LO  4u
#define SLUICE_W_BUFFER_OFFSET_HI  5u
#define SLUICE_W_LENGTH            6u
#define SLUICE_W_FILE_OFFSET_LO    7u
#define SLUICE_W_FILE_OFFSET_HI    8u
#define SLUICE_W_CHUNK_INDEX       9u
#define SLUICE_W_ARGUMENT0         10u
#define SLUICE_W_ARGUMENT1         11u
#define SLUICE_W_RESULT_OFFSET     12u
#define SLUICE_W_RESULT_CAPACITY   13u
#define SLUICE_W_HOST_FLAGS        14u
#define SLUICE_W_COMPLETION        15u
#define SLUICE_SLOT_WORDS          16u

// Host flag bits (SlotHostFlag).
#define SLUICE_FLAG_CANCEL         1u
// Host flags bit 1 (SlotHostFlag.deviceRegion): bufferOffset addresses the
// device ingest region (SluiceParams.deviceData), not the data region.
#define SLUICE_FLAG_DEVICE_REGION  2u

// Slot states (SlotStatus).
#define SLUICE_S_EMPTY             0u
#define SLUICE_S_PUBLISHED         1u
#define SLUICE_S_CLAIMED           2u
#define SLUICE_S_DONE              3u
#define SLUICE_S_FAULTED           4u
#define SLUICE_S_CANCELLED         5u

// Control block words (ControlWord), 16 x u64 at the start of the ring region.
#define SLUICE_C_MAGIC             0u
#define SLUICE_C_SHUTDOWN          1u
#define SLUICE_C_EPOCH             2u
#define SLUICE_C_SLOTS_DONE        3u
#define SLUICE_C_SLOTS_FAULTED     4u
#define SLUICE_C_SLOTS_CANCELLED   5u
#define SLUICE_C_BYTES_PROCESSED   6u
#define SLUICE_C_LAST_FAULT        7u
#define SLUICE_C_WORKERS_RUNNING   8u
#define SLUICE_C_SLOT_COUNT        9u
#define SLUICE_C_SCAN_DIRECTORY_ADDRESS 10u   // the scan-table directory (ScanDirectory), device memory
#define SLUICE_C_SCAN_DIRECTORY_ENTRIES 11u
#define SLUICE_C_TENANT_TABLE_ADDRESS 12u
#define SLUICE_C_TENANT_TABLE_WORDS 13u
#define SLUICE_CONTROL_WORDS       16u
#define SLUICE_MAGIC               0x534C554943450002ull

// Ring geometry (RingGeometry): slots start after the padded control block.
#define SLUICE_SLOTS_OFFSET        256ull
#define SLUICE_RING_ALIGNMENT      256ull

// Opcodes (Opcode).
#define SLUICE_OP_COUNT            1u
#define SLUICE_OP_SCAN             2u
#define SLUICE_OP_CRC32C           3u
// No operation: the dispatcher finishes it from the poll that saw it (see
// "the nop fast path" in sluice_dispatcher).
#define SLUICE_OP_NOP              4u
// Test-only opcodes (Opcode.testOnly): run only when the launch has
// SLUICE_P_TEST_OPCODES, otherwise they fault as unknown opcodes.
#define SLUICE_OP_TEST_ILLEGAL_ADDRESS 0x7E570001u
#define SLUICE_OP_TEST_HANG        0x7E570002u
// User operations (Opcode.userRange): the installed ones are spliced into
// this source by the host (see "user operations" in sluice_dispatcher.h).
#define SLUICE_OP_USER_FIRST       0x10000u
#define SLUICE_OP_USER_LAST        0x1FFFFu

// Fault codes (FaultCode).
#define SLUICE_F_UNKNOWN_OPCODE        1u
#define SLUICE_F_UNSUPPORTED_OPCODE    2u
#define SLUICE_F_BUFFER_OUT_OF_BOUNDS  3u
#define SLUICE_F_RESULT_OUT_OF_BOUNDS  4u
#define SLUICE_F_RESULT_OVERFLOW       5u
#define SLUICE_F_BAD_ARGUMENTS         6u
#define SLUICE_F_TENANT_VIOLATION      7u
#define SLUICE_F_REGION_UNAVAILABLE    8u
#define SLUICE_F_OPERATION_NOT_INSTALLED 9u

// count opcode (CountOp): bytes, newlines, 256 bins.
#define SLUICE_COUNT_RESULT_WORDS  258u

// scan opcode (ScanOp, ScanTable).
#define SLUICE_SCAN_HEADER_WORDS   4u
#define SLUICE_SCAN_COUNT_ONLY     1u
// ScanDirectory: 4 words an entry (address lo, hi, words, owner); a scan
// slot's argument1 names its entry in bits 16-31, bits 1-15 are reserved.
#define SLUICE_SCAN_INDEX_SHIFT    16u
#define SLUICE_SCAN_RESERVED_BITS  0xFFFEu
#define SLUICE_SCAN_ANY_TENANT     0xFFFFFFFFu
#define SLUICE_SCAN_MAGIC          0x334E4353u
#define SLUICE_SCAN_CASE_FLAG      1u
#define SLUICE_SCAN_HASH_MULTIPLIER 0x9E3779B1u
#define SLUICE_SCAN_SECOND_MULTIPLIER 0x85EBCA77u
#define SLUICE_SCAN_LONG_MIX_MULTIPLIER 0xC2B2AE3Du
#define SLUICE_SCAN_LONG_KEY_BYTES 8u
#define SLUICE_SCAN_MAX_LONG_KEY_OFFSET 24u
// ScanTable.Header word indices.
#define SLUICE_SH_MAGIC            0u
#define SLUICE_SH_FLAGS            2u
#define SLUICE_SH_HASH_BITS        5u
#define SLUICE_SH_FILTER_BITS      6u
#define SLUICE_SH_KEY_LENGTH_MASK  7u
#define SLUICE_SH_FILTER_OFFSET    8u
#define SLUICE_SH_BUCKET_OFFSET    9u
#define SLUICE_SH_ENTRIES_OFFSET   10u
#define SLUICE_SH_PATTERN_OFFSET   11u
#define SLUICE_SH_BLOB_OFFSET      12u
#define SLUICE_SH_TOTAL_WORDS      14u
#define SLUICE_SH_FILTER_PROBES    15u
#define SLUICE_SH_LONG_FILTER_BITS 16u
#define SLUICE_SH_LONG_FILTER_OFFSET 17u
#define SLUICE_SH_LONG_KEY_OFFSET  18u
#define SLUICE_SCAN_HEADER_TABLE_WORDS 20u

// crc32c opcode (CRC32COp, CRC32C): reflected Castagnoli polynomial.
#define SLUICE_CRC_RESULT_WORDS    2u
#define SLUICE_CRC_POLY            0x82F63B78u

// Tenant table (TenantTable).
#define SLUICE_TENANT_MAGIC        0x31544E54u
#define SLUICE_TENANT_HEADER_WORDS 8u

#endif  // SLUICE_PROTOCOL_H
