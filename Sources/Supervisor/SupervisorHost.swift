import Devices
import Glibc
import HostAdapter
import LoopCore

/// The supervisor's effector: device actions (`act`) go to the attached instruments, filled
/// from their profiles' templates; every other micro-step is a Linux syscall.
public final class SupervisorHost: Effecting {
    public private(set) var linux = LinuxHost()
    public let instruments: [AttachedInstrument]

    public init(instruments: [AttachedInstrument]) { self.instruments = instruments }

    /// The instrument a device argument names: `profile:serial`, or a profile with one instrument.
    public func instrument(named device: String) -> AttachedInstrument? {
        SupervisorHost.instrument(named: device, in: instruments)
    }

    static func instrument(named device: String, in instruments: [AttachedInstrument]) -> AttachedInstrument? {
        if let exact = instruments.first(where: { "\($0.profile.name):\($0.identity.serial)" == device }) { return exact }
        let byProfile = instruments.filter { $0.profile.name == device }
        return byProfile.count == 1 ? byProfile[0] : nil
    }

    /// The risk class the profiles give an action, for the guard (nil: no such device or action).
    public static func risk(in instruments: [AttachedInstrument]) -> @Sendable (String, String) -> String? {
        let table = instruments.map { ($0.profile.name, $0.identity.serial, $0.profile) }
        return { device, action in
            let matches = table.filter { "\($0.0):\($0.1)" == device || $0.0 == device }
            guard matches.count == 1 || matches.contains(where: { "\($0.0):\($0.1)" == device }) else { return nil }
            let profile = (matches.first { "\($0.0):\($0.1)" == device } ?? matches[0]).2
            return profile.actions[action]?.risk.rawValue
        }
    }

    public func perform(_ call: ResolvedCall) -> CallResult {
        guard call.op == .act else { return linux.perform(call) }
        guard let device = call.args["device"]?.string, let action = call.args["action"]?.string,
              let instrument = instrument(named: device) else { return .failure(errno: ENODEV) }
        guard let params = SupervisorHost.parameters(call.args["params"]?.string ?? "") else { return .failure(errno: EINVAL) }
        let lines: [String]
        do { lines = try instrument.profile.expand(action, params) } catch { return .failure(errno: EINVAL) }
        do {
            for line in lines { try instrument.scpi.send(line) }
            if let first = try instrument.scpi.errors().first {
                return .value(-1, data: Array("\(first)".utf8), fields: ["scpi-error": Int64(first.code)])
            }
        } catch {
            return .failure(errno: EIO)
        }
        return .value(Int64(lines.count), data: Array(lines.joined(separator: "\n").utf8))
    }

    /// `relay=1,percent=40` → ["relay": 1, "percent": 40]; nil if malformed.
    static func parameters(_ text: String) -> [String: Double]? {
        var out: [String: Double] = [:]
        for pair in text.split(separator: ",") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            guard kv.count == 2, let v = Double(kv[1].trimmingCharacters(in: .whitespaces)) else { return nil }
            out[kv[0].trimmingCharacters(in: .whitespaces)] = v
        }
        return out
    }

    public func closeAll() { linux.closeAll() }
}
