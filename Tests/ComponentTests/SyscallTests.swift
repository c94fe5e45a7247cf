import DevicePorts
import Foundation
import Glibc
import HostAdapter
import LoopCore
import Observer
import XCTest

/// Every micro-step of the host adapter, each checked by observing its effect independently:
/// the file on disk, /proc/self/fd, /proc/self/maps, /proc/PID, bytes crossing a socket.
final class SyscallTests: XCTestCase {
    var host = LinuxHost()
    var dir: String!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "worldos-sys-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws {
        host.closeAll()
        try? FileManager.default.removeItem(atPath: dir)
    }

    @discardableResult
    func call(_ op: MicroOp, _ args: [String: Value] = [:]) -> CallResult { host.perform(ResolvedCall(op, args)) }
    func value(_ op: MicroOp, _ args: [String: Value] = [:], file: StaticString = #filePath, line: UInt = #line) throws -> Int64 {
        let r = call(op, args)
        return try XCTUnwrap(r.value, "\(op.rawValue) failed: \(r)", file: file, line: line)
    }
    func isOpen(_ fd: Int64) -> Bool { FileManager.default.fileExists(atPath: "/proc/self/fd/\(fd)") }
    /// A whole /proc file. (String(contentsOfFile:) stops after its first read on procfs.)
    func proc(_ path: String) throws -> String {
        let handle = try XCTUnwrap(FileHandle(forReadingAtPath: path))
        return String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
    }

    func testFiles_openWriteSeekReadStatAndClose_changeTheFileOnDisk() throws {
        let path = dir + "/data"
        let fd = try value(.open, ["path": .string(path), "mode": .string("create")])
        XCTAssertTrue(isOpen(fd))
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)"), path)
        XCTAssertEqual(call(.write, ["fd": .int(fd), "data": .string("hello world")]), .value(11))
        XCTAssertEqual(call(.pwrite, ["fd": .int(fd), "data": .string("W"), "offset": .int(6)]), .value(1))
        XCTAssertEqual(call(.close, ["fd": .int(fd)]), .value(0))
        XCTAssertFalse(isOpen(fd))
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "hello World")

        let dirFD = try value(.open, ["path": .string(dir)])
        let rw = try value(.openat, ["dir": .int(dirFD), "path": .string("data"), "mode": .string("readwrite")])
        XCTAssertEqual(call(.lseek, ["fd": .int(rw), "offset": .int(-5), "whence": .string("end")]), .value(6))
        XCTAssertEqual(call(.read, ["fd": .int(rw), "count": .int(100)]), .value(5, data: Array("World".utf8)))
        XCTAssertEqual(call(.pread, ["fd": .int(rw), "count": .int(5), "offset": .int(0)]), .value(5, data: Array("hello".utf8)))
        var st = stat()
        stat(path, &st)
        let fields = call(.fstat, ["fd": .int(rw)]).fields
        XCTAssertEqual(fields["size"], 11)
        XCTAssertEqual(fields["ino"], Int64(st.st_ino))
        XCTAssertEqual(fields["mode"].map { $0 & Int64(S_IFMT) }, Int64(S_IFREG))
        XCTAssertEqual(call(.openat, ["dir": .int(999), "path": .string("data")]), .failure(errno: EBADF))
    }

    func testPipe_ioctlAndPoll_seeTheBytesInFlight() throws {
        let r = call(.pipe)
        let readFD = try XCTUnwrap(r.value), writeFD = try XCTUnwrap(r.fields["write-fd"])
        XCTAssertTrue(isOpen(readFD) && isOpen(writeFD))
        XCTAssertEqual(call(.poll, ["fd": .int(readFD), "timeout-ms": .int(0)]).value, 0, "nothing to read yet")
        XCTAssertEqual(call(.write, ["fd": .int(writeFD), "data": .string("12345")]), .value(5))
        XCTAssertEqual(call(.ioctl, ["fd": .int(readFD), "request": .string("FIONREAD")]), .value(5))
        let ready = call(.poll, ["fd": .int(readFD), "timeout-ms": .int(1000)])
        XCTAssertEqual(ready.value, 1)
        XCTAssertEqual(ready.fields["in"], 1)
        XCTAssertEqual(call(.read, ["fd": .int(readFD), "count": .int(5)]).data, Array("12345".utf8))
        XCTAssertEqual(call(.ioctl, ["fd": .int(readFD), "request": .string("FIONBIO"), "value": .int(1)]), .value(0))
        XCTAssertEqual(call(.read, ["fd": .int(readFD), "count": .int(5)]), .failure(errno: EAGAIN), "non-blocking and empty")
        XCTAssertEqual(call(.ioctl, ["fd": .int(readFD), "request": .string("TCSBRK")]), .failure(errno: EINVAL))
    }

    func testMmap_mapsTheFile_andMunmapUnmapsIt() throws {
        let path = dir + "/mapped"
        try Data("mapped bytes".utf8).write(to: URL(fileURLWithPath: path))
        let fd = try value(.open, ["path": .string(path)])
        let r = call(.mmap, ["fd": .int(fd), "length": .int(12)])
        let map = try XCTUnwrap(r.value)
        XCTAssertEqual(r.data, Array("mapped bytes".utf8))
        XCTAssertTrue(try proc("/proc/self/maps").contains(path))
        XCTAssertEqual(call(.munmap, ["map": .int(map)]), .value(0))
        XCTAssertFalse(try proc("/proc/self/maps").contains(path))
        XCTAssertEqual(call(.munmap, ["map": .int(map)]), .failure(errno: EINVAL), "unmapped already")
    }

    func testTCP_bindListenConnectAcceptSendAndReceive_onLoopback() throws {
        let server = try value(.socket, ["domain": .string("inet"), "type": .string("stream")])
        let bound = call(.bind, ["fd": .int(server), "address": .string("127.0.0.1:0")])
        let port = try XCTUnwrap(bound.fields["port"])
        XCTAssertEqual(call(.listen, ["fd": .int(server), "backlog": .int(4)]), .value(0))
        let client = try value(.socket, ["domain": .string("inet"), "type": .string("stream")])
        XCTAssertEqual(call(.connect, ["fd": .int(client), "address": .string("127.0.0.1:\(port)")]).value, 0)
        let accepted = try value(.accept, ["fd": .int(server)])
        XCTAssertEqual(call(.sendto, ["fd": .int(client), "data": .string("ping")]), .value(4))
        XCTAssertEqual(call(.poll, ["fd": .int(accepted), "timeout-ms": .int(1000)]).value, 1)
        XCTAssertEqual(call(.recvfrom, ["fd": .int(accepted), "count": .int(16)]).data, Array("ping".utf8))
        let inode = try XCTUnwrap(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(accepted)").split(separator: "[").last?.dropLast())
        XCTAssertTrue(try proc("/proc/self/net/tcp").contains(" \(inode) "), "the kernel lists the connection")
        XCTAssertEqual(call(.connect, ["fd": .int(client), "address": .string("not an address")]), .failure(errno: EINVAL))
    }

    func testUDPAndUnixSockets_carryDatagrams_andUnixBindMakesASocketFile() throws {
        let receiver = try value(.socket, ["domain": .string("inet"), "type": .string("dgram")])
        let port = try XCTUnwrap(call(.bind, ["fd": .int(receiver), "address": .string("127.0.0.1:0")]).fields["port"])
        let sender = try value(.socket, ["domain": .string("inet"), "type": .string("dgram")])
        XCTAssertEqual(call(.sendto, ["fd": .int(sender), "data": .string("dgram"), "address": .string("127.0.0.1:\(port)")]), .value(5))
        XCTAssertEqual(call(.poll, ["fd": .int(receiver), "timeout-ms": .int(1000)]).value, 1)
        XCTAssertEqual(call(.recvfrom, ["fd": .int(receiver), "count": .int(16)]).data, Array("dgram".utf8))
        let v6 = try value(.socket, ["domain": .string("inet6"), "type": .string("stream")])
        XCTAssertNotNil(call(.bind, ["fd": .int(v6), "address": .string("[::1]:0")]).fields["port"])

        let unix = try value(.socket, ["domain": .string("unix"), "type": .string("stream")])
        XCTAssertEqual(call(.bind, ["fd": .int(unix), "address": .string("unix:\(dir!)/control.sock")]).value, 0)
        var st = stat()
        XCTAssertEqual(stat(dir + "/control.sock", &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFSOCK)
    }

    func testSpawnKillAndWaitpid_onRealChildren() throws {
        let r = call(.spawn, ["path": .string("/bin/sleep"), "args": .string("30")])
        let pid = try XCTUnwrap(r.value)
        XCTAssertEqual(try proc("/proc/\(pid)/comm"), "sleep\n")
        let stat = try proc("/proc/\(pid)/stat")
        XCTAssertEqual(ProcStat(parsing: Array(stat.utf8)).map { Int64($0.startTime) }, r.fields["start"], "spawn reports the identity")
        XCTAssertEqual(call(.waitpid, ["pid": .int(pid), "nohang": .int(1)]), .value(0), "still running")
        XCTAssertEqual(call(.kill, ["pid": .int(pid), "signal": .string("TERM")]), .value(0))
        XCTAssertEqual(call(.waitpid, ["pid": .int(pid)]), .value(pid, fields: ["signal": Int64(SIGTERM)]))
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/proc/\(pid)"), "reaped")
        let failing = try value(.spawn, ["path": .string("/bin/false")])
        XCTAssertEqual(call(.waitpid, ["pid": .int(failing)]).fields["exit-code"], 1)
        XCTAssertEqual(call(.waitpid, ["pid": .int(1)]), .failure(errno: ECHILD), "not our child")
        XCTAssertEqual(call(.kill, ["pid": .int(pid), "signal": .string("TERM")]), .failure(errno: ESRCH), "gone")
        XCTAssertEqual(call(.spawn, ["path": .string(dir + "/no-such-program")]), .failure(errno: ENOENT))
    }

    func testSpawn_passesOnlyStdio_notTheSupervisorsInheritedDescriptors() throws {
        // A descriptor without close-on-exec, as a supervisor inherits from whoever started it.
        let leaked = open("/dev/null", O_RDONLY)
        XCTAssertGreaterThan(leaked, 2)
        defer { close(leaked) }
        let pid = try value(.spawn, ["path": .string("/bin/sleep"), "args": .string("30")])
        defer {
            kill(Int32(pid), SIGKILL)
            _ = call(.waitpid, ["pid": .int(pid)])
        }
        let held = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").compactMap(Int.init).sorted()
        XCTAssertEqual(held, [0, 1, 2], "the child holds its stdio and nothing of the supervisor's")
    }

    func testTimer_expires_andItsDescriptorCountsExpirations() throws {
        let t = try value(.timer, ["after-ms": .int(20)])
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(t)"), "anon_inode:[timerfd]")
        XCTAssertEqual(call(.poll, ["fd": .int(t), "timeout-ms": .int(2000)]).value, 1)
        let r = call(.read, ["fd": .int(t), "count": .int(8)])
        let expirations = try XCTUnwrap(r.data).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        XCTAssertEqual(expirations, 1)
        XCTAssertEqual(call(.timer, ["after-ms": .int(0)]), .failure(errno: EINVAL))
    }

    func testInotify_watchesADirectory_andReportsACreatedFile() throws {
        let fd = try value(.inotify)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)"), "anon_inode:inotify")
        XCTAssertGreaterThan(try value(.watch, ["fd": .int(fd), "path": .string(dir)]), 0)
        XCTAssertTrue(FileManager.default.createFile(atPath: dir + "/new-file", contents: Data()))
        XCTAssertEqual(call(.poll, ["fd": .int(fd), "timeout-ms": .int(2000)]).value, 1)
        let bytes = try XCTUnwrap(call(.read, ["fd": .int(fd), "count": .int(4096)]).data)
        XCTAssertTrue(bytes.withUnsafeBytes { InotifyRecord.parse($0) }.contains { $0.name == "new-file" && $0.action == "create" })
        XCTAssertEqual(call(.watch, ["fd": .int(fd), "path": .string(dir + "/absent")]), .failure(errno: ENOENT))
    }
}
