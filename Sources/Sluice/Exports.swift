// One import: a program that uses Sluice writes `import Sluice` and gets every
// type its public API hands out or takes (ring and slot types, errors and
// opcodes from SluiceCore; results and scan tables from SluiceOps; read
// streams from SluiceIngest; the CPU and CUDA backends; the file readers
// of SluiceSystem; swift-system's `FilePath`). Without these re-exports a
// user would import seven modules and compile only because SwiftPM leaks
// module search paths.
@_exported import SluiceCPU
@_exported import SluiceCUDA
@_exported import SluiceCore
@_exported import SluiceIngest
@_exported import SluiceOps
@_exported import SluiceSystem
@_exported import SystemPackage
