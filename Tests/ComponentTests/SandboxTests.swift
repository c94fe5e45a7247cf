import Foundation
import Glibc
import Guard
import LoopCore
import Sandbox
import XCTest

/// Supervised programs under the real seccomp filter and user notification: a C probe
/// (Tests/SandboxProbe) tries each mediated call, and each way around it, and prints what the
/// kernel answered. Every refusal must also be in the audit log, with its rule.
final class SandboxTests: XCTestCase {
    var dir = ""
    var probe = ""
    var auditPath = ""

    override func setUpWithError() throws {
        let built = URL(fileURLWithPath: SupervisedProgram.defaultHelper()).deletingLastPathComponent().appendingPathComponent("sandbox-probe").path
        guard FileManager.default.isExecutableFile(atPath: built),
              FileManager.default.isExecutableFile(atPath: SupervisedProgram.defaultHelper()) else {
            throw XCTSkip("FAIL LOUDLY: sandbox-probe or worldos-sandbox not built beside the tests; run `swift build --build-tests`")
        }
        dir = NSTemporaryDirectory() + "worldos-sandbox-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir + "/public", withIntermediateDirectories: true)
        chmod(dir, 0o755)
        chmod(dir + "/public", 0o777)
        // A copy any user can run (the build folder may not be), so one test can drop to nobody.
        probe = dir + "/sandbox-probe"
        try FileManager.default.copyItem(atPath: built, toPath: probe)
        chmod(probe, 0o755)
        try "hello\n".write(toFile: dir + "/public/hello", atomically: false, encoding: .utf8)
        try "read only\n".write(toFile: dir + "/ro", atomically: false, encoding: .utf8)
        try "the secret\n".write(toFile: dir + "/secret", atomically: false, encoding: .utf8)
        auditPath = dir + "/audit.jsonl"
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Where this process loaded the Swift runtime from: SwiftPM links it into the C probe too.
    var swiftRuntime: String {
        let maps = String(decoding: (try? FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/self/maps")).readToEnd()) ?? Data(), as: UTF8.self)
        let line = maps.split(separator: "\n").first { $0.hasSuffix("/libswiftCore.so") }
        return line.map { String($0[$0.firstIndex(of: "/")!...]) }.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path } ?? "/usr/lib"
    }

    var policyText: String {
        """
        version: 1
        contexts:
          probe:
            capabilities: []
            deny:
              - op: open
                path: [\(dir)/secret, /etc/shadow]
                reason: secrets stay closed
            allow:
              - op: spawn
                path: [\(probe), /usr/bin/true]
              - op: open
                path: [/usr/lib/**, \(swiftRuntime)/**, /proc/*/maps, /etc/ld.so.cache, /dev/zero, /dev/null, /etc/*, \(dir)/ro]
                mode: read
              - op: open
                path: [/dev/null, /dev/ptmx]
                mode: [write, readwrite]
              - op: open
                path: [\(dir)/public, \(dir)/public/**]
        """
    }

    /// Run the probe with `arguments` as context `probe`; its output's lines.
    func run(_ arguments: [String], user: (uid: UInt32, gid: UInt32)? = nil) throws -> [String] {
        let policy = try Policy.parse(policyText, file: "probe-policy.yaml")
        let judge = ProgramGuard(policy: policy, audit: try AuditLog(path: auditPath), mode: .real, protectedPaths: [dir + "/run"])
        let pipe = Pipe()
        let program = try SupervisedProgram.launch([probe] + arguments, context: "probe", guard: judge, user: user,
                                                   stdio: (0, pipe.fileHandleForWriting.fileDescriptor, 2))
        try pipe.fileHandleForWriting.close()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        _ = program.wait()
        program.waitForMediator()
        return String(decoding: output, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    func audit() throws -> [AuditRecord] {
        guard case .success = AuditLog.verify(path: auditPath) else { XCTFail("the audit chain does not verify"); return [] }
        let data = try Data(contentsOf: URL(fileURLWithPath: auditPath))
        return try data.split(separator: UInt8(ascii: "\n")).map { try JSONDecoder().decode(AuditRecord.self, from: Data($0)) }
    }

    func testAnAllowedOpen_readsThroughTheDescriptorTheSupervisorOpened() throws {
        XCTAssertEqual(try run(["read", dir + "/public/hello"]), ["ok hello"])
        let records = try audit()
        XCTAssertTrue(records.contains { $0.decision == "allow" && $0.call.contains("\(dir)/public/hello, read") && $0.context == "probe" })
        // The program's own start was decided too: the exec of the probe.
        XCTAssertTrue(records.contains { $0.decision == "allow" && $0.call == "execve(\(probe))" })
    }

    func testADeniedPath_isRefusedWithTheRuleThatDeniedIt() throws {
        XCTAssertEqual(try run(["read", dir + "/secret"]), ["err \(EACCES)"])
        let denial = try XCTUnwrap(try audit().first { $0.decision == "deny" })
        XCTAssertEqual(denial.rule, "probe-policy.yaml:6")
        XCTAssertEqual(denial.reason, "secrets stay closed")
        // Nothing that no rule allows: default deny.
        XCTAssertEqual(try run(["read", "/root/.bashrc"]), ["err \(EACCES)"])
    }

    func testOtherSpellingsOfADeniedPath_resolveToIt() throws {
        XCTAssertEqual(try run(["chdir", dir, "secret"]), ["err \(EACCES)"], "relative to the working directory")
        XCTAssertEqual(try run(["dirfd", dir + "/public", "../secret"]), ["err \(EACCES)"], "relative to a directory descriptor")
        XCTAssertEqual(try run(["opath", "/etc", "shadow"]), ["err \(EACCES)"], "under an O_PATH descriptor")
        XCTAssertEqual(try run(["read", dir + "/public/../public/./../secret"]), ["err \(EACCES)"], "dot segments")
        try FileManager.default.createSymbolicLink(atPath: dir + "/public/innocent", withDestinationPath: dir + "/secret")
        XCTAssertEqual(try run(["read", dir + "/public/innocent"]), ["err \(EACCES)"], "a symlink in an allowed folder")
        XCTAssertEqual(try run(["read", "/proc/self/root" + dir + "/secret"]), ["err \(EACCES)"], "through /proc/self/root")
    }

    func testAReadOnlyDescriptor_cannotBeReopenedForWritingThroughProcSelfFd() throws {
        XCTAssertEqual(try run(["open", dir + "/ro", "r"]).first?.hasPrefix("ok "), true)
        XCTAssertEqual(try run(["procfd", dir + "/ro"]), ["err \(EACCES)"])
        XCTAssertEqual(try String(contentsOfFile: dir + "/ro", encoding: .utf8), "read only\n")
    }

    func testOpenat2AndIoUring_areNotRoutesAroundTheFilter() throws {
        XCTAssertEqual(try run(["openat2", dir + "/secret"]), ["err \(ENOSYS)"])
        XCTAssertEqual(try run(["openat2", dir + "/public/hello"]), ["err \(ENOSYS)"], "openat2 is refused whatever the path")
        XCTAssertEqual(try run(["io_uring"]), ["err \(EPERM)"])
        let reasons = try audit().compactMap(\.reason)
        XCTAssertTrue(reasons.contains("io_uring_setup is never allowed to a supervised program"))
    }

    /// A second thread rewrites the path between the allowed and the denied file while the
    /// first opens it: the supervisor reads the path once and opens what it decided on.
    func testASecondThreadRacingThePath_neverOpensTheDeniedFile() throws {
        let lines = try run(["race", dir + "/public/hello", dir + "/secret", "3000"])
        let parts = try XCTUnwrap(lines.first).split(separator: " ")
        XCTAssertEqual(parts.count, 4, "\(lines)")
        XCTAssertEqual(parts[1], "0", "opens that reached the secret: \(lines)")
        XCTAssertGreaterThan(Int(parts[3]) ?? 0, 0, "the allowed file was opened at all")
        // And the racing spelling was refused, by rule, at least once.
        XCTAssertTrue(try audit().contains { $0.decision == "deny" && $0.rule == "probe-policy.yaml:6" })
    }

    func testASymlinkSwappedUnderTheCheck_neverOpensTheDeniedFile() throws {
        let lines = try run(["swap", dir + "/public", dir + "/public/hello", dir + "/secret", "2000"])
        let parts = try XCTUnwrap(lines.first).split(separator: " ")
        XCTAssertEqual(parts.count, 4, "\(lines)")
        XCTAssertEqual(parts[1], "0", "opens that reached the secret: \(lines)")
    }

    func testNamesUnderProtectedPaths_cannotBeLinkedRemovedRenamedOrTruncated() throws {
        XCTAssertEqual(try run(["link", dir + "/secret", dir + "/public/copy"]), ["err \(EACCES)"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/public/copy"))
        XCTAssertEqual(try run(["unlink", dir + "/secret"]), ["err \(EACCES)"])
        XCTAssertEqual(try run(["rename", dir + "/secret", dir + "/public/moved"]), ["err \(EACCES)"])
        XCTAssertEqual(try run(["truncate", dir + "/ro"]), ["err \(EACCES)"])
        XCTAssertEqual(try String(contentsOfFile: dir + "/secret", encoding: .utf8), "the secret\n")
        XCTAssertEqual(try String(contentsOfFile: dir + "/ro", encoding: .utf8), "read only\n")
        // Where the policy allows writing, the supervisor does them on the program's behalf.
        XCTAssertEqual(try run(["rename", dir + "/public/hello", dir + "/public/renamed"]), ["ok 0"])
        XCTAssertEqual(try run(["link", dir + "/public/renamed", dir + "/public/linked"]), ["ok 0"])
        XCTAssertEqual(try run(["truncate", dir + "/public/linked"]), ["ok 0"])
        XCTAssertEqual(try run(["unlink", dir + "/public/renamed"]), ["ok 0"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/public/renamed"))
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/public/linked"), Data())
    }

    func testExec_isDecidedByThePolicy_andRefusedWhileAnotherThreadCouldChangeThePath() throws {
        XCTAssertEqual(try run(["exec", "/usr/bin/true"]), [], "true ran and printed nothing")
        XCTAssertEqual(try run(["exec", "/usr/bin/cat", "/etc/hostname"]), ["err \(EACCES)"])
        XCTAssertEqual(try run(["exec-threaded", "/usr/bin/true"]), ["err \(EPERM)"])
        XCTAssertTrue(try audit().contains { ($0.reason ?? "").hasPrefix("execve from a program with 2 threads") })
    }

    func testSignals_reachTheProgramsOwnProcessesOnly() throws {
        XCTAssertEqual(try run(["kill-child"]), ["ok 0"])
        XCTAssertEqual(try run(["kill", "\(getpid())", "0"]), ["err \(EPERM)"], "the supervisor itself")
        XCTAssertEqual(try run(["kill", "-1", "0"]), ["err \(EPERM)"], "every process")
        XCTAssertEqual(try run(["ptrace", "\(getpid())"]), ["err \(EPERM)"])
        XCTAssertEqual(try run(["mount", dir + "/public"]), ["err \(EPERM)"])
    }

    func testTerminalIoctls_needAnIoctlRule() throws {
        XCTAssertEqual(try run(["ioctl-tty", "/dev/ptmx"]), ["err \(EPERM)"])
        let denial = try XCTUnwrap(try audit().last { $0.call.hasPrefix("ioctl(") })
        XCTAssertEqual(denial.decision, "deny")
        XCTAssertTrue(denial.call.contains("/dev/ptmx"), denial.call)
    }

    /// The filter is not the whole policy: run as nobody, the kernel's permissions still refuse
    /// a file the policy would allow, because the supervisor opens with the program's identity.
    func testKernelPermissions_stillApplyUnderTheProgramsUser() throws {
        guard getuid() == 0 else { throw XCTSkip("FAIL LOUDLY: needs root to run the probe as another user") }
        try "root only\n".write(toFile: dir + "/public/root-only", atomically: false, encoding: .utf8)
        chmod(dir + "/public/root-only", 0o600)
        XCTAssertEqual(try run(["read", dir + "/public/root-only"]), ["ok root only"], "as root")
        XCTAssertEqual(try run(["read", dir + "/public/root-only"], user: (65534, 65534)), ["err \(EACCES)"], "as nobody")
        XCTAssertEqual(try run(["read", dir + "/public/hello"], user: (65534, 65534)), ["ok hello"])
        XCTAssertEqual(try run(["open", dir + "/public/made-by-nobody", "c"], user: (65534, 65534)).first?.hasPrefix("ok "), true)
        var info = stat()
        XCTAssertEqual(stat(dir + "/public/made-by-nobody", &info), 0)
        XCTAssertEqual(info.st_uid, 65534, "created as the program's user, not the supervisor's")
    }
}

/// What creates names or changes rights is mediated too, and a program the filter kills is
/// reaped and its death recorded.
extension SandboxTests {
    var suite: SandboxTests { self }

    func testSymlink_outsideWhereThePolicyLetsItCreate_isRefused_andInsideIsMadeByTheSupervisor() throws {
        XCTAssertEqual(try suite.run(["symlink", "/etc/shadow", dir + "/planted"]), ["err \(EACCES)"])
        XCTAssertNil(try? FileManager.default.destinationOfSymbolicLink(atPath: dir + "/planted"))
        XCTAssertEqual(try suite.run(["symlink", dir + "/secret", dir + "/public/innocent"]), ["ok 0"])
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: dir + "/public/innocent"), dir + "/secret")
        let records = try suite.audit()
        XCTAssertTrue(records.contains { $0.decision == "deny" && $0.call == "symlink(\"/etc/shadow\", \(dir)/planted)" }, "\(records.map { $0.call })")
        // And reading through the planted link is still the secret.
        XCTAssertEqual(try suite.run(["read", dir + "/public/innocent"]), ["err \(EACCES)"])
    }

    func testMkdir_isDecidedAsACreate() throws {
        XCTAssertEqual(try suite.run(["mkdir", dir + "/new"]), ["err \(EACCES)"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/new"))
        XCTAssertEqual(try suite.run(["mkdir", dir + "/public/new"]), ["ok 0"])
        var isDirectory: ObjCBool = false
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/public/new", isDirectory: &isDirectory) && isDirectory.boolValue)
    }

    func testChmodAndChown_needWriteOfTheObject_byEveryRoute() throws {
        XCTAssertEqual(try suite.run(["chmod", dir + "/ro", "666"]), ["err \(EACCES)"], "a file it may only read")
        XCTAssertEqual(try suite.run(["fchmod", dir + "/ro", "666"]), ["err \(EACCES)"], "through a descriptor it opened to read")
        XCTAssertEqual(try suite.run(["chown", dir + "/ro", "65534"]), ["err \(EACCES)"])
        try FileManager.default.createSymbolicLink(atPath: dir + "/public/ro-link", withDestinationPath: dir + "/ro")
        XCTAssertEqual(try suite.run(["chmod", dir + "/public/ro-link", "666"]), ["err \(EACCES)"], "through a link in a writable folder")
        let mode = { (path: String) in (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? -1 }
        XCTAssertEqual(try mode(dir + "/ro") & 0o777, 0o644)
        XCTAssertEqual(try suite.run(["chmod", dir + "/public/hello", "600"]), ["ok 0"])
        XCTAssertEqual(try mode(dir + "/public/hello") & 0o777, 0o600)
        XCTAssertEqual(try suite.run(["fchmod", dir + "/public/hello", "640"]), ["ok 0"])
        XCTAssertEqual(try mode(dir + "/public/hello") & 0o777, 0o640)
    }

    func testExtendedAttributes_areNeverChanged() throws {
        XCTAssertEqual(try suite.run(["setxattr", dir + "/public/hello"]), ["err \(EPERM)"])
        XCTAssertTrue(try suite.audit().contains { $0.reason?.contains("extended attributes") == true })
    }

    /// An open through the i386 entry is a call of another architecture: the filter kills the
    /// program. Its end is reaped (no zombie), audited with its cause and reported as an event.
    func testAProgramTheFilterKills_isReaped_andItsDeathAudited() throws {
        let policy = try Policy.parse(suite.policyText, file: "probe-policy.yaml")
        let judge = ProgramGuard(policy: policy, audit: try AuditLog(path: suite.auditPath), mode: .real, protectedPaths: [dir + "/run"])
        let exits = ProgramExits(judge: judge)
        let program = try SupervisedProgram.launch([suite.probe, "int80-open", "/etc/shadow"], context: "probe", guard: judge)
        exits.watch(program, argv: [suite.probe, "int80-open"])
        var poller = pollfd(fd: exits.descriptor, events: Int16(POLLIN), revents: 0)
        XCTAssertEqual(poll(&poller, 1, 10_000), 1, "the exit wakes the loop's poll")
        let events = exits.drain(at: Instant(nanoseconds: 7))
        XCTAssertEqual(events.map(\.subject), ["probe"])
        XCTAssertEqual(events.first?.source, "program")
        XCTAssertTrue(events.first?.details["cause"]?.contains("seccomp filter (SIGSYS)") == true, "\(events)")
        var status: Int32 = 0
        XCTAssertEqual(waitpid(program.pid, &status, WNOHANG), -1, "already reaped")
        XCTAssertEqual(errno, ECHILD)
        program.waitForMediator()
        let record = try XCTUnwrap(try suite.audit().first { $0.event == "program-exit" })
        XCTAssertEqual(record.context, "probe")
        XCTAssertTrue(record.result?.contains("SIGSYS") == true)
    }
}
