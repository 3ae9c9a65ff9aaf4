/// A setting the caller chose itself, as a reason names it.
///
/// The library says where the choice came from in its own terms ("cpu:
/// chosen with backend cpu in the configuration"). A caller that took the
/// setting from somewhere else says so through
/// `EngineConfiguration.settingName`: the CLI names the flag its user typed
/// ("cpu: chosen with --backend cpu").
public enum ConfiguredSetting: Hashable, Sendable, CustomStringConvertible {
    /// `EngineConfiguration.backend`, set to a backend rather than `auto`.
    case backend(BackendChoice)
    /// `EngineConfiguration.ingest`, set to a read path rather than `auto`.
    case ingest(IngestChoice)
    /// `EngineConfiguration.ingestCopy`, set to a copy path rather than `auto`.
    case ingestCopy(IngestCopyChoice)

    /// The setting and its value: "backend cpu", "ingest gds".
    public var description: String {
        switch self {
        case .backend(let choice): "backend \(choice.rawValue)"
        case .ingest(let choice): "ingest \(choice.rawValue)"
        case .ingestCopy(let choice): "ingest-copy \(choice.rawValue)"
        }
    }

    /// The library's name for a setting the caller chose: "backend cpu in
    /// the configuration".
    public static let inTheConfiguration: @Sendable (ConfiguredSetting) -> String = { "\($0) in the configuration" }
}
