import Glibc
import SystemCalls

/// A device operation that failed: which device, what we tried, and what to check.
public struct DeviceError: Error, CustomStringConvertible, Equatable, Sendable {
    public var device: String
    public var message: String
    public var hint: String
    /// The errno, when a syscall failed.
    public var errno: Int32?

    public init(device: String, message: String, hint: String) {
        self.device = device
        self.message = message
        self.hint = hint
    }

    public init(device: String, errno: Int32, action: String) {
        self.device = device
        self.message = "cannot \(action): \(String(cString: strerror(errno)))"
        self.hint = ""
        self.errno = errno
    }

    /// ENODEV and friends: the device is gone, a state transition, not a bug.
    public var isDeviceGone: Bool { errno.map { Errno($0).deviceGone } ?? false }
    public var description: String { "\(device): \(message)" + (hint.isEmpty ? "" : " (\(hint))") }
}
