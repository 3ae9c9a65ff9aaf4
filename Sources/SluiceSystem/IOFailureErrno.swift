import SluiceCore

extension IOFailure {
    /// A failure of a system call that set `errno`, its reason the C
    /// library's message for it (`SystemErrors.text`).
    package init(
        operation: String, path: String, fileOffset: UInt64 = 0, length: Int = 0, chunk: Int? = nil,
        errno: Int32, allocatesMemory: Bool = false
    ) {
        self.init(
            operation: operation, path: path, fileOffset: fileOffset, length: length, chunk: chunk, errno: errno,
            reason: SystemErrors.text(errno), allocatesMemory: allocatesMemory)
    }
}
