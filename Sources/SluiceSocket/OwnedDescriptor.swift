import Synchronization
import SystemPackage

/// A descriptor that is closed when its owner goes away, unless released.
public struct OwnedDescriptor: ~Copyable, Sendable {
    /// The descriptor, valid while this owner lives.
    public let descriptor: FileDescriptor

    /// Takes ownership of `descriptor`: it is closed with this owner.
    public init(taking descriptor: FileDescriptor) { self.descriptor = descriptor }

    /// Gives the descriptor up without closing it; the caller now owns it.
    public consuming func release() -> FileDescriptor {
        let d = descriptor
        discard self
        return d
    }

    deinit { SocketCalls.close(descriptor) }
}

/// The descriptors one receive delivered, owned until taken: those no one
/// takes are closed when the batch goes away (or at `closeAll`), so a
/// message the server drops, or an error between receive and use, leaks none.
public final class DescriptorBatch: Sendable {
    private let slots: Mutex<[FileDescriptor?]>

    /// A batch owning `descriptors`.
    public init(taking descriptors: [FileDescriptor]) { slots = Mutex(descriptors.map { $0 }) }

    /// How many descriptors arrived (taken ones included).
    public var count: Int { slots.withLock { $0.count } }

    /// How many are still owned by the batch.
    public var remaining: Int { slots.withLock { $0.count { $0 != nil } } }

    /// Takes descriptor `index`; nil when out of range or already taken.
    public func take(_ index: Int) -> OwnedDescriptor? {
        let fd: FileDescriptor? = slots.withLock { slots in
            guard slots.indices.contains(index), let fd = slots[index] else { return nil }
            slots[index] = nil
            return fd
        }
        return fd.map { OwnedDescriptor(taking: $0) }
    }

    /// Closes every descriptor not taken.
    public func closeAll() {
        let left = slots.withLock { slots in
            defer { slots = slots.map { _ in nil } }
            return slots.compactMap { $0 }
        }
        for fd in left { SocketCalls.close(fd) }
    }

    deinit { closeAll() }
}
