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
    case empty = 0
    case published = 1
    case claimed = 2
    case done = 3
    case faulted = 4
    case cancelled = 5

    /// Who performs a transition; the protocol gives each edge to one side only.
    public enum Actor: Sendable, CustomStringConvertible {
        case host, worker
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
