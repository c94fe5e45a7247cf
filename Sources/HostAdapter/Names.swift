import DevicePorts
import Glibc
import LoopCore
import SystemCalls

/// The loop's resolver: each name a micro-step gives (`path`, a unix socket's `address`) is
/// resolved as the kernel would resolve it for the supervisor — symlinks, `..`, `/proc/self`,
/// the magic links `/proc/PID/root`, `cwd` and `fd/N` — by the same ``PathResolver`` the
/// mediators of supervised programs use. An `openat` relative to a directory descriptor is
/// resolved from that descriptor. A name that cannot be resolved (a missing directory on the way)
/// is left as written: the host opens names with every link refused, so what it then reaches,
/// if anything, is what the name spells.
public struct LinuxNames: NameResolving {
    public init() {}

    public func resolve(_ call: ResolvedCall) -> ResolvedCall {
        guard let argument = call.nameArgument, var name = call.string(argument) else { return call }
        if argument == .address { name = String(name.dropFirst("unix:".count)) }
        // A socket being bound, a watch's last name: the last component is what is made or
        // watched, and a bind never follows a link there.
        let followLast = call.op != .bind
        let dirfd: Int32 = call.op == .openat ? (call.int(.dir).flatMap(Int32.init(exactly:)) ?? -1) : AT_FDCWD
        guard let resolved = try? PathResolver.forSupervisor().resolve(name, dirfd: dirfd, followLast: followLast) else { return call }
        return call.named(resolved.path, object: resolved.object?.description, deviceNumber: resolved.object?.deviceNumber)
    }
}
