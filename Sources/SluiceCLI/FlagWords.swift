import ArgumentParser
import Sluice

// Settings in the command's terms: the library names a setting its caller
// chose as "backend cpu in the configuration"; the command's user typed a
// flag, so the command's reasons and errors name the flag instead.
extension ConfiguredSetting {
    /// The flag and value that set it: "--backend cpu", "--ingest gds".
    var flag: String {
        switch self {
        case .backend(let choice): "--backend \(choice.rawValue)"
        case .ingest(let choice): "--ingest \(choice.rawValue)"
        case .ingestCopy(let choice): "--ingest-copy \(choice.rawValue)"
        }
    }

    /// For `EngineConfiguration.settingName`: reasons say "chosen with --backend cpu".
    static let byFlag: @Sendable (ConfiguredSetting) -> String = { $0.flag }
}

extension ValidationError {
    /// A value of `flag` the library refused, with the flag named first:
    /// "--devices: invalid configuration: devices 1,1: device 1 is named twice".
    init(flag: String, _ error: PipelineError) {
        self.init("\(flag): \(error.message)")
    }
}
