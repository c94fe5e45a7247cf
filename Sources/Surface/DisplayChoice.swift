import DevicePorts
import Foundation
import HostAdapter
import SystemCalls

/// Which screen a run drives (`worldos run --display`): `none`; `auto` (the default: the first
/// card under /dev/dri with a connected connector, else none); or a card's path. Whatever cannot
/// be used — no card, nothing attached, another DRM master, a mode the connector lacks — is one
/// line for the log, and the run goes on with the PNG alone.
public enum DisplayChoice {
    public static func open(_ option: String, connector: String? = nil, mode: String? = nil,
                            directory: String = "/dev/dri") -> (display: DRMDisplay?, note: String) {
        switch option {
        case "none":
            return (nil, "display: none asked for; the panel is the PNG in the run folder")
        case "auto":
            let cards = cards(in: directory)
            guard let card = cards.first(where: { !DRMDisplay.connectedConnectors(path: $0).isEmpty }) else {
                return (nil, cards.isEmpty ? "display: no DRM card in \(directory); the panel is the PNG in the run folder"
                                           : "display: nothing attached to \(cards.joined(separator: ", ")); the panel is the PNG in the run folder")
            }
            return opened(card, connector: connector, mode: mode)
        default:
            return opened(option, connector: connector, mode: mode)
        }
    }

    /// Whether `option` would find something attached now, from the kernel's last known state
    /// (no probe): what the supervisor asks every second while it drives no screen.
    public static func attached(_ option: String, directory: String = "/dev/dri") -> Bool {
        switch option {
        case "none": return false
        case "auto":
            return cards(in: directory).contains { !DRMDisplay.connectedConnectors(path: $0, probe: false).isEmpty }
        default: return !DRMDisplay.connectedConnectors(path: option, probe: false).isEmpty
        }
    }

    /// The DRM cards under `directory`, card2 before card10.
    private static func cards(in directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasPrefix("card") }.sorted { $0.count != $1.count ? $0.count < $1.count : $0 < $1 }
            .map { directory + "/" + $0 }
    }

    private static func opened(_ path: String, connector: String?, mode: String?) -> (display: DRMDisplay?, note: String) {
        do {
            let display = try DRMDisplay(path: path, connector: connector, mode: mode)
            return (display, "display: \(path) \(display.connectorName) \(display.mode) (\(display.driver)), page-flipped on vblank")
        } catch {
            return (nil, "display: \(error); the panel is the PNG in the run folder")
        }
    }
}
