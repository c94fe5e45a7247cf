import CShim
import Foundation
import Glibc
import LoopCore
@testable import Observer
import StateGraph
import WorldOSTesting
import XCTest

final class ProcParserTests: XCTestCase {
    func testStat_handlesOddNames_andRejectsMalformedLines() throws {
        let line = "77 (a) b) c) R 5 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 -5 4 0 999 0 0"
        let s = try XCTUnwrap(ProcStat(parsing: Array(line.utf8)))
        XCTAssertEqual([s.comm, String(s.state)], ["a) b) c", "R"])
        XCTAssertEqual([Int64(s.ppid), s.priority, s.nice, s.threads, Int64(s.startTime)], [5, 20, -5, 4, 999])
        let spaced = try XCTUnwrap(ProcStat(parsing: Array("8 (b)  S  1 8 8 0 -1 0 0 0 0 0 0 0 0 0 +19 0 2 0 12\n".utf8)))
        XCTAssertEqual([Int64(spaced.ppid), spaced.priority, spaced.threads, Int64(spaced.startTime)], [1, 19, 2, 12], "runs of spaces, a sign, the newline")
        for bad in ["", "77", "77 (x", "77 x) R 5", "77 (x) R 99999999999 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9",
                    "77 (x) R - 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9", "77 (x) R 5 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0",
                    "77 (x) R 5 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99999999999999999999", "77 (x) R notanumber 1 2", "77 (x) RR 5 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9",
                    "77 (x) R 5 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 -3", "77 (x) R 5 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 one 0 9"] {
            XCTAssertNil(ProcStat(parsing: Array(bad.utf8)), bad)
        }
    }

    func testInetTables_decodeAddressesAndStates_andSkipMalformedLines() {
        let tcp = """
          sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
           0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0
           1: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 12346 1 0000000000000000 20 4 0 10 -1
           2: garbage line
           3: 0100007F:ZZZZ 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
        """
        let (entries, malformed) = NetTable.parseInet(Array(tcp.utf8), protocolName: "tcp")
        XCTAssertEqual(malformed, 2)
        XCTAssertEqual(entries, [
            SocketEntry(inode: 12345, protocolName: "tcp", local: "127.0.0.1:8080", remote: "0.0.0.0:0", state: "LISTEN"),
            SocketEntry(inode: 12346, protocolName: "tcp", local: "127.0.0.1:50000", remote: "127.0.0.1:8080", state: "ESTABLISHED"),
        ])
        let tcp6 = "header\n   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1\n"
        XCTAssertEqual(NetTable.parseInet(Array(tcp6.utf8), protocolName: "tcp6").entries.first?.local, "[0:0:0:0:0:0:0:1]:8080")
        let udp = "header\n  5: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 888 2\n"
        XCTAssertEqual(NetTable.parseInet(Array(udp.utf8), protocolName: "udp").entries.first?.state, "UNCONN")
        XCTAssertEqual(NetTable.parseInet([UInt8](), protocolName: "tcp").entries, [])
        XCTAssertEqual([NetTable.address([255, 255, 255, 255], port: 65535), NetTable.address([0, 0, 0, 0], port: 0),
                        NetTable.address([10, 0, 20, 1], port: 80), NetTable.address([192, 168, 100, 9], port: 1000)],
                       ["255.255.255.255:65535", "0.0.0.0:0", "10.0.20.1:80", "192.168.100.9:1000"])
        XCTAssertEqual([NetTable.tcpStateName(1), NetTable.tcpStateName(10), NetTable.tcpStateName(11), NetTable.tcpStateName(12),
                        NetTable.tcpStateName(0)], ["ESTABLISHED", "LISTEN", "CLOSING", "0C", "00"])
        XCTAssertEqual([SocketDiag.unixState(type: 1, state: 10), SocketDiag.unixState(type: 2, state: 7), SocketDiag.unixState(type: 9, state: 3)],
                       ["stream LISTEN", "dgram UNCONNECTED", "0009 3"])
    }

    func testSocketDiagReplies_malformedOrRefused_areReportedNotMisread() {
        let tcp = SocketDiag.Query.all[0], unix = SocketDiag.Query.all[4]
        func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
        func message(_ type: UInt16, _ payload: [UInt8], length: UInt32? = nil) -> [UInt8] {
            le(length ?? UInt32(16 + payload.count)) + le(type) + [0, 0] + [UInt8](repeating: 0, count: 8) + payload
        }
        // A well-formed inet record: 127.0.0.1:8080 listening, inode 4242.
        var inet = [UInt8](repeating: 0, count: 72)
        inet[0] = UInt8(AF_INET); inet[1] = 10; inet[4] = 0x1F; inet[5] = 0x90
        inet[8...11] = [127, 0, 0, 1]; inet[68] = 0x92; inet[69] = 0x10
        let good = SocketDiag.parse(message(20, inet) + message(3, [0, 0, 0, 0]), query: tcp)
        XCTAssertEqual(good.entries, [SocketEntry(inode: 4242, protocolName: "tcp", local: "127.0.0.1:8080", remote: "0.0.0.0:0", state: "LISTEN")])
        XCTAssertTrue(good.done)
        XCTAssertEqual(good.malformed, 0)
        // Too short a record, a length past the datagram, a length below a header, a stray tail.
        XCTAssertEqual(SocketDiag.parse(message(20, Array(inet[0..<40])), query: tcp).malformed, 1)
        let overlong = SocketDiag.parse(message(20, inet, length: 400), query: tcp)
        XCTAssertEqual([overlong.malformed, overlong.entries.count], [1, 0])
        XCTAssertEqual(SocketDiag.parse(message(20, inet, length: 8), query: tcp).malformed, 1)
        XCTAssertEqual(SocketDiag.parse(message(20, inet) + [1, 2, 3], query: tcp).malformed, 1)
        // The kernel's refusal carries its errno.
        XCTAssertEqual(SocketDiag.parse(message(2, le(UInt32(bitPattern: -ENOENT)) + [UInt8](repeating: 0, count: 16)), query: tcp).error, ENOENT)
        // A unix record whose name attribute runs past the message is rejected whole.
        var record: [UInt8] = [UInt8(AF_UNIX), 1, 10, 0] + le(UInt32(77)) + [UInt8](repeating: 0, count: 8)
        XCTAssertEqual(SocketDiag.parse(message(20, record + le(UInt16(40)) + [0, 0] + Array("/x".utf8)), query: unix).malformed, 1)
        record += le(UInt16(4 + 9)) + [0, 0] + [0] + Array("abstract".utf8) + [0, 0, 0]
        XCTAssertEqual(SocketDiag.parse(message(20, record), query: unix).entries,
                       [SocketEntry(inode: 77, protocolName: "unix", local: "@abstract", remote: "", state: "stream LISTEN")])
        // Names as /proc/net/unix shows them: an abstract name's NULs as `@`, a path without its NUL.
        let padded: [UInt8] = [UInt8(AF_UNIX), 2, 7, 0] + le(UInt32(78)) + [UInt8](repeating: 0, count: 8)
            + le(UInt16(4 + 6)) + [0, 0] + [0, 0x61, 0x62, 0, 0x63, 0] + [0, 0]
        XCTAssertEqual(SocketDiag.parse(message(20, padded), query: unix).entries.map(\.local), ["@ab@c@"])
        let path: [UInt8] = [UInt8(AF_UNIX), 1, 1, 0] + le(UInt32(79)) + [UInt8](repeating: 0, count: 8)
            + le(UInt16(4 + 7)) + [0, 0] + Array("/run/x".utf8) + [0] + [0]
        XCTAssertEqual(SocketDiag.parse(message(20, path), query: unix).entries.map(\.local), ["/run/x"])
        XCTAssertEqual(SocketDiag.parse(message(20, path), query: unix).entries.map(\.state), ["stream CONNECTED"])
    }

    func testUnixTable_readsPathsTypesAndListeningSockets() {
        let unix = """
        Num       RefCount Protocol Flags    Type St Inode Path
        0000000000000000: 00000002 00000000 00010000 0001 01 20001 /run/bench.sock
        0000000000000000: 00000003 00000000 00000000 0001 03 20002
        0000000000000000: 00000002 00000000 00000000 0002 01 20003 @abstract name
        bad
        """
        let (entries, malformed) = NetTable.parseUnix(Array(unix.utf8))
        XCTAssertEqual(malformed, 1)
        XCTAssertEqual(entries.map(\.state), ["stream LISTEN", "stream CONNECTED", "dgram UNCONNECTED"])
        XCTAssertEqual(entries.map(\.local), ["/run/bench.sock", "", "@abstract name"])
        XCTAssertEqual(entries.map(\.inode), [20001, 20002, 20003])
    }

    func testMaps_listsEachMappedFileOnce_withItsDeviceNumber() {
        let maps = """
        55d0c0a00000-55d0c0a02000 r--p 00000000 08:01 131090                     /usr/bin/cat
        55d0c0a02000-55d0c0a07000 r-xp 00002000 08:01 131090                     /usr/bin/cat
        7f1c2e400000-7f1c2e428000 r--p 00000000 103:02 2621 /usr/lib/x86_64-linux-gnu/libc.so.6
        7ffd4a1e9000-7ffd4a20a000 rw-p 00000000 00:00 0                          [stack]
        55d0c1f6e000-55d0c1f8f000 rw-p 00000000 00:00 0                          [heap]
        not a maps line
        """
        let files = ProcMaps.parse(Array(maps.utf8))
        XCTAssertEqual(files.map(\.path), ["/usr/bin/cat", "/usr/lib/x86_64-linux-gnu/libc.so.6"])
        XCTAssertEqual(files[0].device, makeDevice(major: 8, minor: 1))
        XCTAssertEqual(deviceMajor(files[1].device), 0x103)
        XCTAssertEqual(deviceMinor(files[1].device), 2)
    }
}
