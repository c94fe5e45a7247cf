import Foundation
import Glibc
import LoopCore
import Observer
import StateGraph
import WorldOSTesting
import XCTest

/// The graph must not flicker: over 200 refreshes — the full rescans every 20 among them — no
/// node of the observer's own process or of a set of quiet children is absent for exactly one
/// refresh and then back as it was, and at the refreshes around a full rescan their descriptors
/// are the ones lsof lists. (The observer's own process keeps a descriptor per process it
/// watches: when a process elsewhere ends, its descriptor is closed and the number may be taken
/// by the next process's, another object — a change the graph rightly shows, not a flicker.)
final class ObserverFlickerTests: XCTestCase {
    func testTwoHundredRefreshes_noNodeIsAbsentForExactlyOne_andDescriptorsAgreeWithLsof() throws {
        var children: [Int32] = []
        defer { for pid in children { kill(pid, SIGKILL); var s: Int32 = 0; waitpid(pid, &s, 0) } }
        for _ in 0..<20 {
            var pid: pid_t = 0
            let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/usr/bin/sleep"), strdup("600"), nil]
            defer { argv.forEach { free($0) } }
            XCTAssertEqual(posix_spawn(&pid, "/usr/bin/sleep", nil, nil, argv, environ), 0)
            children.append(pid)
        }
        let watched = Set(children + [getpid()])
        func owner(_ id: String) -> Int32? {
            // process:PID@START, fd:process:PID@START#N
            let body = id.hasPrefix("fd:process:") ? id.dropFirst("fd:process:".count) : id.hasPrefix("process:") ? id.dropFirst("process:".count) : nil
            return body.flatMap { Int32($0.prefix { $0 != "@" }) }
        }
        var observer = ProcObserver()
        /// Per refresh, each watched node's id and what it is (a descriptor's target).
        var history: [[String: String]] = []
        var lsofChecks = 0
        for step in 0..<200 {
            let observation = try observer.observe(at: Instant(nanoseconds: UInt64(step) * 1_000_000))
            history.append(Dictionary(uniqueKeysWithValues: observation.nodes.filter { owner($0.id.rawValue).map(watched.contains) ?? false }
                .map { ($0.id.rawValue, $0["target"]?.stringValue ?? "") }))
            if [18, 19, 20, 39, 40, 41].contains(step), FileManager.default.isExecutableFile(atPath: Lsof.path) {
                let graph = Set(observation.nodes.filter { $0.kind == .fileDescriptor }.compactMap { n -> String? in
                    guard let pid = owner(n.id.rawValue), watched.contains(pid), pid != getpid(), let fd = n["fd"]?.intValue else { return nil }
                    return "\(pid):\(fd)"
                })
                XCTAssertEqual(graph, Set(try Lsof.descriptors(of: children).map { "\($0.pid):\($0.fd)" }), "step \(step): the children's descriptors")
                lsofChecks += 1
            }
        }
        XCTAssertEqual(lsofChecks, 6, "lsof is installed by make setup")
        var flickers: [String] = []
        for t in 1..<(history.count - 1) {
            for (id, what) in history[t - 1] where history[t][id] == nil && history[t + 1][id] == what {
                flickers.append("refresh \(t): \(id) (\(what))")
            }
        }
        XCTAssertEqual(flickers, [], "\(flickers.count) nodes absent for exactly one refresh, first: \(flickers.prefix(5))")
        XCTAssertGreaterThan(history.last?.count ?? 0, 20 * 4, "the children and their descriptors are seen")
    }
}
