import Foundation
import Glibc
import Guard
import Journal
import Service
import SystemCalls
import XCTest

/// The local door on a real unix socket: who asks is who the kernel says connected, requests
/// are read strictly, and what is done is the approval store's and the audit log's as from
/// every other door.
final class ControlSocketTests: XCTestCase {
    func testAnApprovalOverTheSocket_isTheConnectingUsersAndAudited() throws {
        let f = try ServiceFixture()
        let pending = try f.pendingApproval()
        let socket = try ControlSocket(model: f.model)
        socket.start()
        defer { socket.stop() }

        var info = stat()
        XCTAssertEqual(lstat(f.folder.control, &info), 0)
        XCTAssertEqual(info.st_mode & 0o777, 0o660, "only the owner and its group may connect")

        let listed = try ControlClient.ask(f.folder.control, ["op": "approvals"])
        XCTAssertEqual((listed["approvals"] as? [[String: Any]])?.map { $0["id"] as? String }, [pending.id])

        let answer = try ControlClient.ask(f.folder.control, ["op": "approve", "id": pending.id, "label": "checked the wiring"])
        XCTAssertEqual(answer["ok"] as? Bool, true, "\(answer)")
        let me = Approver.owner(uid: getuid(), sudoUser: nil, label: nil, via: "control socket")
        XCTAssertEqual(f.approvals.all().first?.state, .approved)
        let record = try XCTUnwrap(f.records().last { $0.event == "approval" })
        XCTAssertEqual(record.decision, "approved")
        XCTAssertTrue(record.reason?.hasPrefix("by \(me.name) (uid \(getuid()), control socket)") == true, record.reason ?? "")
        XCTAssertTrue(record.reason?.contains("labelled \"checked the wiring\"") == true, "the label is kept beside the identity")

        // The binding holds: the approval is used once, by exactly the action it names.
        XCTAssertNotNil(try f.approvals.consume(pending.binding))
        XCTAssertNil(try f.approvals.consume(pending.binding))

        let again = try ControlClient.ask(f.folder.control, ["op": "approve", "id": pending.id])
        XCTAssertEqual(again["ok"] as? Bool, false)
        XCTAssertTrue((again["error"] as? String)?.contains("already") == true, "\(again)")
    }

    func testASudoClaim_isTakenFromRootOnly() throws {
        try XCTSkipUnless(getuid() == 0, "needs root to be root; nothing else is tested here")
        let f = try ServiceFixture()
        let pending = try f.pendingApproval()
        let socket = try ControlSocket(model: f.model)
        socket.start()
        defer { socket.stop() }
        let fd = try XCTUnwrap(try? UnixSocket.connect(path: f.folder.control).get())
        defer { close(fd) }
        let answer = Self.exchange(fd, #"{"op":"approve","id":"\#(pending.id)","sudo-user":"Carol"}"#)
        XCTAssertEqual(answer["ok"] as? Bool, true, "\(answer)")
        XCTAssertTrue(f.records().last { $0.event == "approval" }?.reason?.hasPrefix("by carol (uid 0, control socket via sudo)") == true)
    }

    func testMalformedRequests_getClearAnswers_andTheConnectionGoesOn() throws {
        let f = try ServiceFixture()
        let socket = try ControlSocket(model: f.model)
        socket.start()
        defer { socket.stop() }
        let fd = try XCTUnwrap(try? UnixSocket.connect(path: f.folder.control).get())
        defer { close(fd) }
        let cases: [(String, String)] = [
            ("this is not json", "is not JSON"),
            ("[1, 2]", "must be a JSON object"),
            (#"{"op": "fly"}"#, "unknown op \"fly\""),
            (#"{"id": "0123456789abcdef"}"#, "field \"op\" is required"),
            (#"{"op": "approve"}"#, "field \"id\" is required"),
            (#"{"op": "approve", "id": 7}"#, "field \"id\" must be a string"),
            (#"{"op": "approve", "id": "0123456789abcdef", "by": "root"}"#, "unknown field \"by\""),
            (#"{"op": "audit", "count": true}"#, "field \"count\" must be a whole number"),
            (#"{"op": "audit", "count": -4}"#, "field \"count\" must be a whole number"),
            (#"{"op": "approve", "id": "0123456789abcdef"}"#, "no approval request 0123456789abcdef"),
            (#"{"op": "act", "context": "bench-operator", "action": "rm -rf"}"#, "may use letters, digits"),
            (#"{"op": "act", "context": "bench-operator", "action": "relay.energise", "params": {"relay": "0,1"}}"#, "cannot be sent"),
        ]
        for (line, says) in cases {
            let answer = Self.exchange(fd, line)
            XCTAssertEqual(answer["ok"] as? Bool, false, line)
            XCTAssertTrue((answer["error"] as? String)?.contains(says) == true, "\(line) → \(answer)")
        }
        // After all that, the same connection still serves.
        XCTAssertEqual(Self.exchange(fd, #"{"op": "status"}"#)["ok"] as? Bool, true)
        // A line longer than a request may be is refused and the connection closed.
        let huge = #"{"op": "status", "x": ""# + String(repeating: "a", count: 80_000) + "\"}"
        let answer = Self.exchange(fd, huge)
        XCTAssertTrue((answer["error"] as? String)?.contains("at most") == true, "\(answer)")
        XCTAssertEqual(f.approvals.all().count, 0, "nothing was made by any of it")
    }

    func testStopping_removesTheSocket_andTheCLIFallsBack() throws {
        let f = try ServiceFixture()
        let socket = try ControlSocket(model: f.model)
        socket.start()
        socket.stop()
        XCTAssertFalse(FileManager.default.fileExists(atPath: f.folder.control))
        XCTAssertThrowsError(try ControlClient.ask(f.folder.control, ["op": "status"])) { XCTAssertTrue($0 is ControlClient.NotRunning) }
        // Something other than a socket where it would be: not replaced, said.
        FileManager.default.createFile(atPath: f.folder.control, contents: Data("keep me".utf8))
        XCTAssertThrowsError(try ControlSocket(model: f.model)) { XCTAssertTrue("\($0)".contains("not a socket"), "\($0)") }
        XCTAssertEqual(FileManager.default.contents(atPath: f.folder.control), Data("keep me".utf8))
    }

    /// One line out, one line back, as JSON.
    static func exchange(_ fd: Int32, _ line: String) -> [String: Any] {
        _ = UnixSocket.send(fd, Array((line + "\n").utf8))
        var answer: [UInt8] = []
        var byte: UInt8 = 0
        while read(fd, &byte, 1) == 1 {
            if byte == UInt8(ascii: "\n") { break }
            answer.append(byte)
        }
        return (try? JSONSerialization.jsonObject(with: Data(answer))) as? [String: Any] ?? ["unreadable": String(decoding: answer, as: UTF8.self)]
    }
}
