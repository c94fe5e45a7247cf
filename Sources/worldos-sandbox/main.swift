// worldos-sandbox: the first process of a supervised program. The supervisor spawns it with a
// unix socket on descriptor 3; it drops to the program's user (if one is given), loads the
// seccomp filter, hands the filter's notification descriptor to the supervisor over the
// socket, and execs the program, whose exec is the first call the supervisor decides.
// It starts no threads: a filter with user notification must be loaded before any exist.
//
//   worldos-sandbox [--user UID:GID] -- /absolute/program [arguments…]
import CShim
import Glibc
import Sandbox

func fail(_ message: String) -> Never {
    FileHandle.standardError(message)
    exit(126)
}

enum FileHandle {
    static func standardError(_ text: String) {
        let line = "worldos-sandbox: \(text)\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }
}

var arguments = Array(CommandLine.arguments.dropFirst())
var identity: (uid: UInt32, gid: UInt32)?
if arguments.first == "--user" {
    let parts = arguments.count > 1 ? arguments[1].split(separator: ":").compactMap { UInt32($0) } : []
    guard parts.count == 2 else { fail("--user takes UID:GID, such as 65534:65534") }
    identity = (parts[0], parts[1])
    arguments.removeFirst(2)
}
guard arguments.first == "--", arguments.count >= 2, arguments[1].hasPrefix("/") else {
    fail("usage: worldos-sandbox [--user UID:GID] -- /absolute/program [arguments…]")
}
let program = Array(arguments.dropFirst())

// Nothing of the supervisor's leaks into the program but stdio and the socket (closed below).
_ = worldos_close_from(4)
if let identity {
    var gid = identity.gid
    guard setgroups(1, &gid) == 0, setgid(identity.gid) == 0, setuid(identity.uid) == 0 else {
        fail("cannot become \(identity.uid):\(identity.gid): \(String(cString: strerror(errno)))")
    }
}
// If the supervisor dies (kill -9 included), so does the program: nothing would answer its
// mediated calls, which would then fail with ENOSYS. Set after the change of user, which clears
// it; a supervisor already gone by then is caught by the parent check.
let supervisor = getppid()
guard worldos_parent_death_signal(SIGKILL) == 0, getppid() == supervisor else { fail("the supervisor is gone") }
let notify: Int32
do { notify = try SandboxFilter.load() } catch { fail("\(error)") }
guard worldos_send_fd(3, notify) == 0 else { fail("cannot hand the notification descriptor over: \(String(cString: strerror(errno)))") }
close(notify)
close(3)
var argv: [UnsafeMutablePointer<CChar>?] = program.map { strdup($0) } + [nil]
execv(program[0], &argv)
fail("cannot run \(program[0]): \(String(cString: strerror(errno)))")
