import DevicePorts
import Executor
import Foundation
import Glibc
import Guard
import HostAdapter
import LoopCore
import StateGraph
import SystemCalls
import XCTest

/// Every route to a denied file, on real files through the real executor, resolver, guard and
/// host: the decision is the object's, whatever the name. Each attempt asserts the verdict, the
/// rule, and that nothing of the denied file was read.
final class ObjectRedTeamTests: XCTestCase {
    var root = ""
    var run = ""
    let secretText = "root:$y$j9T$not-for-contexts\n"

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "worldos-objects-\(UUID().uuidString.prefix(8))"
        run = root + "/run"
        let fm = FileManager.default
        try fm.createDirectory(atPath: root + "/sub", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: run, withIntermediateDirectories: true)
        try secretText.write(toFile: root + "/secret", atomically: false, encoding: .utf8)
        try "fine\n".write(toFile: root + "/ok", atomically: false, encoding: .utf8)
        try "salt\n".write(toFile: run + "/redaction.salt", atomically: false, encoding: .utf8)
        try fm.createSymbolicLink(atPath: root + "/link", withDestinationPath: root + "/secret")
        try fm.createSymbolicLink(atPath: root + "/relative-link", withDestinationPath: "sub/../secret")
        try fm.createSymbolicLink(atPath: root + "/ok-link", withDestinationPath: "ok")
        XCTAssertEqual(link(root + "/secret", root + "/hard"), 0, "a hard link for the test")
        XCTAssertEqual(link(run + "/redaction.salt", root + "/salt-copy"), 0, "a hard link into the run folder")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: root) }

    func policy() throws -> Policy {
        try Policy.parse("""
        version: 1
        contexts:
          reader:
            deny:
              - op: [open, openat]
                path: \(root)/secret
                reason: the secret is never read
            allow:
              - op: [open, openat]
                path: [\(root)/**, /proc/**, /dev/**]
                mode: read
              - op: [read, close]
        """, file: "objects.yaml")
    }

    /// Open `path` (as `openat` from `dir` when given) and read it, as context `reader`.
    func attempt(_ path: String, dir: Int32? = nil, owner: @escaping @Sendable (UInt64) -> DeviceOwner? = { _ in nil }) throws -> (StepOutcome, read: StepOutcome) {
        var guardian: any Guarding = PolicyGuard(policy: try policy(), audit: try AuditLog(path: run + "/audit.jsonl"), mode: .real,
                                                 approvals: try ApprovalStore(directory: run + "/approvals"), protectedPaths: [run], owner: owner)
        var host: any Effecting = LinuxHost()
        var executor = TraceExecutor(names: LinuxNames())
        let open = dir.map { MicroStep(.openat, ["dir": .int(Int64($0)), "path": .string(path)]) } ?? MicroStep(.open, ["path": .string(path)])
        let outcome = executor.execute(Proposal(context: "reader", task: "attack", steps: [open, MicroStep(.read, ["fd": .result(of: 0), "count": .int(4096)])]),
                                       context: Node(id: .context("reader"), kind: .executionContext, partition: .context("reader")),
                                       held: Holdings(descriptors: dir.map { [Int64($0)] } ?? []), guard: &guardian, effector: &host, shadow: nil,
                                       at: Instant(nanoseconds: 1))
        if var linux = host as? LinuxHost { linux.closeAll() }
        return (outcome.steps[0], outcome.steps[1])
    }

    func assertDenied(_ path: String, dir: Int32? = nil, rule: String, because: String, owner: @escaping @Sendable (UInt64) -> DeviceOwner? = { _ in nil },
                      file: StaticString = #filePath, line: UInt = #line) throws {
        let (open, read) = try attempt(path, dir: dir, owner: owner)
        XCTAssertEqual(open.status, .denied, "\(path) must be denied, was \(open.status)", file: file, line: line)
        XCTAssertEqual(open.decision?.rule, rule, "\(path): \(open.decision.map(\.description) ?? "no decision")", file: file, line: line)
        XCTAssertTrue(open.decision?.reason?.contains(because) == true, "\(path): \(open.decision?.reason ?? "")", file: file, line: line)
        XCTAssertNil(read.result, "nothing may be read through \(path)", file: file, line: line)
        let audit = try String(contentsOfFile: run + "/audit.jsonl", encoding: .utf8)
        XCTAssertFalse(audit.contains("not-for-contexts"), "the secret's bytes are nowhere in the record", file: file, line: line)
    }

    func testTheSecretByItsOwnName_isDenied() throws {
        try assertDenied(root + "/secret", rule: "objects.yaml:5", because: "never read")
    }

    func testASymlinkToTheSecret_isDeniedByTheSecretsRule() throws {
        try assertDenied(root + "/link", rule: "objects.yaml:5", because: "never read")
        try assertDenied(root + "/relative-link", rule: "objects.yaml:5", because: "never read")
    }

    func testDotDot_resolvesToTheSecret() throws {
        try assertDenied(root + "/sub/../secret", rule: "objects.yaml:5", because: "never read")
    }

    func testProcSelfRoot_isTheSecret() throws {
        try assertDenied("/proc/self/root" + root + "/secret", rule: "objects.yaml:5", because: "never read")
        try assertDenied("/proc/\(getpid())/root" + root + "/link", rule: "objects.yaml:5", because: "never read")
    }

    func testProcSelfCwd_isTheSecret() throws {
        let cwd = FileManager.default.currentDirectoryPath
        let ups = cwd.split(separator: "/").map { _ in ".." }.joined(separator: "/")
        try assertDenied("/proc/self/cwd/" + ups + root + "/secret", rule: "objects.yaml:5", because: "never read")
    }

    func testProcPidFd_ofAnOpenSecret_isTheSecret() throws {
        let fd = open(root + "/secret", O_RDONLY)
        defer { close(fd) }
        try assertDenied("/proc/self/fd/\(fd)", rule: "objects.yaml:5", because: "never read")
        try assertDenied("/proc/thread-self/fd/\(fd)", rule: "objects.yaml:5", because: "never read")
        try assertDenied("/dev/fd/\(fd)", rule: "objects.yaml:5", because: "never read")
    }

    func testAHardLinkToTheSecret_isDeniedAsTheSameObject() throws {
        try assertDenied(root + "/hard", rule: "objects.yaml:5", because: "is \(root)/secret under another name")
    }

    func testOpenatFromADirectory_isResolvedFromThatDirectory() throws {
        let dir = open(root + "/sub", O_RDONLY | O_DIRECTORY)
        defer { close(dir) }
        try assertDenied("../secret", dir: dir, rule: "objects.yaml:5", because: "never read")
    }

    func testTheRunFolder_throughProcSelfRoot_orAHardLink_isProtected() throws {
        try assertDenied("/proc/self/root" + run + "/redaction.salt", rule: "protected", because: "supervisor's own records")
        try assertDenied(root + "/salt-copy", rule: "protected", because: "under another name")
    }

    func testADeviceAProfileOwns_isDeniedByEveryName() throws {
        var master: Int32 = -1, slave: Int32 = -1
        XCTAssertEqual(openpty(&master, &slave, nil, nil, nil), 0)
        defer { close(master); close(slave) }
        let name = try PathResolver.readLink("/proc/self/fd/\(slave)", missing: ENOENT)
        let number = try XCTUnwrap(FileObject.at(name)?.deviceNumber)
        let owner: @Sendable (UInt64) -> DeviceOwner? = {
            $0 == number ? DeviceOwner(device: "bench-bridge:SIM-1", path: name, profile: "bench-bridge", rawChannel: false, risk: "irreversible-physical") : nil
        }
        try FileManager.default.createSymbolicLink(atPath: root + "/port", withDestinationPath: name)
        for route in [name, root + "/port", "/proc/self/fd/\(slave)"] {
            try assertDenied(route, rule: "device-owned", because: "bench-bridge:SIM-1", owner: owner)
        }
        // A profile that declares a raw channel: the open is the policy's to allow, and carries
        // the profile's highest risk class, so an irreversible one waits for an approval.
        let raw: @Sendable (UInt64) -> DeviceOwner? = {
            $0 == number ? DeviceOwner(device: "bench-bridge:SIM-1", path: name, profile: "bench-bridge", rawChannel: true, risk: "irreversible-physical") : nil
        }
        let (open, _) = try attempt(root + "/port", owner: raw)
        guard case .needsApproval(_, let reason)? = open.decision else { return XCTFail("a raw channel must ask: \(open.status)") }
        XCTAssertTrue(reason.contains("raw-open on bench-bridge:SIM-1") && reason.contains("irreversible-physical"), reason)
        let reversible: @Sendable (UInt64) -> DeviceOwner? = {
            $0 == number ? DeviceOwner(device: "bench-bridge:SIM-1", path: name, profile: "bench-bridge", rawChannel: true, risk: "reversible") : nil
        }
        XCTAssertEqual(write(master, "x\n", 2), 2, "something to read, so the allowed read returns")
        XCTAssertEqual(try attempt(name, owner: reversible).0.decision?.isAllowed, true, "a reversible profile's raw channel is the policy's alone")
    }

    func testAnAllowedFileThroughASymlink_isOpenedByItsCanonicalName() throws {
        let (open, read) = try attempt(root + "/ok-link")
        XCTAssertEqual(open.decision?.isAllowed, true, "\(open.status)")
        XCTAssertEqual(open.call?.path, root + "/ok", "the call carries the object's canonical name")
        XCTAssertEqual(open.call?.asWritten, root + "/ok-link", "and the name as written")
        XCTAssertEqual(open.call?.object, FileObject.at(root + "/ok")?.description)
        XCTAssertEqual(read.result?.data, Array("fine\n".utf8))
    }

    // MARK: the opener: what was decided is what is opened

    func testOpener_aSymlinkSwappedInAfterTheCheck_fails() throws {
        let resolved = try PathResolver.forSupervisor().resolve(root + "/ok", dirfd: AT_FDCWD, followLast: true)
        try FileManager.default.removeItem(atPath: root + "/ok")
        try FileManager.default.createSymbolicLink(atPath: root + "/ok", withDestinationPath: root + "/secret")
        XCTAssertEqual(ObjectOpener.open(resolved.path, flags: O_RDONLY, expect: resolved.object.map { ($0.device, $0.inode) }), .failure(Errno(ELOOP)))
    }

    func testOpener_anotherFileRenamedOverTheCheckedOne_fails() throws {
        let resolved = try PathResolver.forSupervisor().resolve(root + "/ok", dirfd: AT_FDCWD, followLast: true)
        XCTAssertEqual(rename(root + "/secret", root + "/ok"), 0)
        XCTAssertEqual(ObjectOpener.open(resolved.path, flags: O_RDONLY, expect: resolved.object.map { ($0.device, $0.inode) }), .failure(Errno(ESTALE)))
    }

    func testOpener_refusesMagicLinks() throws {
        let fd = open(root + "/ok", O_RDONLY)
        defer { close(fd) }
        XCTAssertEqual(ObjectOpener.open("/proc/self/fd/\(fd)", flags: O_RDONLY), .failure(Errno(ELOOP)))
    }
}
