/// The lifecycle state held in word 0 of every slot.
///
/// Every state has exactly one writer at a time, so no transition needs an
/// atomic read-modify-write between the host and the device (PCIe gives the
/// GPU no atomics that are atomic with respect to the host). Workers race
/// each other only on PUBLISHED → CLAIMED, which they settle with a
/// compare-and-swap among themselves.
///
/// ```
///            host                 worker                worker
///   EMPTY ─────────▶ PUBLISHED ─────────▶ CLAIMED ─────────▶ DONE | FAULTED
///     ▲                 │  (cancel requested)                      │
///     │                 └─────────▶ CANCELLED                      │
///     └──────────────── host reclaims any terminal state ◀─────────┘
/// ```
public enum SlotStatus: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    /// Free: the host may write a payload and publish it.
    case empty = 0
    /// Ready for a worker to claim (or to cancel, if the host asked).
    case published = 1
    /// A worker is running the slot's operation.
    case claimed = 2
    /// Finished; `completion` holds the result words written.
    case done = 3
    /// Failed; `completion` holds the `FaultCode`.
    case faulted = 4
    /// Not run: the host asked to cancel it before a worker claimed it.
    case cancelled = 5

    /// Who performs a transition; the protocol gives each edge to one side only.
    public enum Actor: Sendable, CustomStringConvertible {
        /// The submitter: publishes slots, asks to cancel them, reclaims finished ones.
        case host
        /// A CPU thread or GPU block: claims, finishes and cancels slots.
        case worker
        /// "host" or "worker".
        public var description: String { self == .host ? "host" : "worker" }
    }

    /// A state the worker will never leave on its own: the host must reclaim it.
    public var isTerminal: Bool {
        switch self {
        case .done, .faulted, .cancelled: return true
        case .empty, .published, .claimed: return false
        }
    }

    /// Whether `actor` may move a slot from `self` to `next`.
    public func allows(_ next: SlotStatus, by actor: Actor) -> Bool {
        switch (actor, self, next) {
        case (.host, .empty, .published): return true
        case (.host, .done, .empty), (.host, .faulted, .empty), (.host, .cancelled, .empty): return true
        case (.worker, .published, .claimed), (.worker, .published, .cancelled): return true
        case (.worker, .claimed, .done), (.worker, .claimed, .faulted): return true
        default: return false
        }
    }

    /// The state's name in capitals, as the protocol document writes it.
    public var description: String {
        switch self {
        case .empty: return "EMPTY"
        case .published: return "PUBLISHED"
        case .claimed: return "CLAIMED"
        case .done: return "DONE"
        case .faulted: return "FAULTED"
        case .cancelled: return "CANCELLED"
        }
    }
}
