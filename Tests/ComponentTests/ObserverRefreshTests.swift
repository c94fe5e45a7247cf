import CShim
import Foundation
import Glibc
import LoopCore
@testable import Observer
import StateGraph
import WorldOSTesting
import XCTest

/// The observer's incremental refreshes against the real /proc: what it rereads, what it patches,
/// and that a patched observation is the one a fresh observer would make.
extension ObserverTests {
    func testIncrementalRefresh_rereadsOnlyTheProcessThatChanged() throws {
        let child = try ScriptedChild("/usr/bin/env", ["python3", fdChild])
        // Wait until the child has finished starting (python opens and closes files while it
        // imports): a table swapped for another of the same size is only seen at a full rescan.
        XCTAssertEqual(child.send("ping"), "pong")
        var observer = ProcObserver(fullRescanEvery: 0)
        _ = try observer.refresh(at: now, full: true)
        XCTAssertTrue(observer.lastRefresh.full)
        let fd = child.send("file /etc/hostname")
        let after = try observer.observe(at: now)
        XCTAssertFalse(observer.lastRefresh.full)
        XCTAssertEqual(observer.lastRefresh.processesRead, 0, "no process was new")
        XCTAssertGreaterThanOrEqual(observer.lastRefresh.descriptorScans, 1)
        XCTAssertNotNil(try descriptors(of: child.pid, in: graph(after))[Int64(fd)!], "the new descriptor is seen within one refresh")
        child.send("close \(fd)")
        XCTAssertNil(try descriptors(of: child.pid, in: graph(try observer.observe(at: now)))[Int64(fd)!])
        child.finish()
        let gone = try graph(try observer.observe(at: now))
        XCTAssertFalse(gone.nodes(ofKind: .process).contains { $0["pid"] == .int(Int64(child.pid)) })
        XCTAssertFalse(gone.nodes.keys.contains { $0.rawValue.contains("process:\(child.pid)@") }, "its descriptors went with it")
    }

    func testObjectNodes_followARenameAndASocketStateChange_atTheNextFullRefresh() throws {
        // A shared object's node is kept between refreshes while it is held: it must still show
        // the name the descriptor now shows and the state the socket is now in.
        let dir = NSTemporaryDirectory() + "worldos-rename-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertTrue(FileManager.default.createFile(atPath: dir + "/before", contents: Data("x".utf8)))
        let (listener, port) = try loopbackListener()
        defer { close(listener) }
        let child = try ScriptedChild("/usr/bin/env", ["python3", fdChild])
        let file = try XCTUnwrap(Int64(child.send("file \(dir)/before")))
        let client = try XCTUnwrap(child.send("tcp-connect \(port)").split(separator: " ").first.flatMap { Int64($0) })
        let accepted = accept(listener, nil, nil)
        XCTAssertGreaterThanOrEqual(accepted, 0)
        var observer = ProcObserver(fullRescanEvery: 0)
        var g = try graph(try observer.refresh(at: now, full: true))
        var fds = try descriptors(of: child.pid, in: g)
        XCTAssertEqual(try XCTUnwrap(fds[file].flatMap { object(of: $0, in: g) })["path"], .string(dir + "/before"))
        XCTAssertEqual(try XCTUnwrap(fds[client].flatMap { object(of: $0, in: g) })["state"], .string("ESTABLISHED"))

        XCTAssertEqual(rename(dir + "/before", dir + "/after"), 0)
        close(accepted)  // the child's end of the connection goes to CLOSE_WAIT
        g = try graph(try observer.refresh(at: now, full: true))
        fds = try descriptors(of: child.pid, in: g)
        XCTAssertEqual(try XCTUnwrap(fds[file].flatMap { object(of: $0, in: g) })["path"], .string(dir + "/after"))
        XCTAssertEqual(try XCTUnwrap(fds[client].flatMap { object(of: $0, in: g) })["state"], .string("CLOSE_WAIT"))
        child.finish()
    }

    func testPatchedObservations_matchAFreshObserver_overRandomChanges() throws {
        // A refresh that finds a few processes changed, new or gone patches their parts of the
        // last observation. Checked against a fresh observer's full refresh after each of 80
        // random changes — a child opening and closing descriptors, processes started and
        // killed under this one: the child's process, descriptors, their edges and the objects
        // they refer to, and this process's children, must be the same; and the whole
        // observation must apply as a graph (no node twice, no edge to a node that is not
        // there) with no object left that nothing holds.
        let child = try ScriptedChild("/usr/bin/env", ["python3", fdChild])
        defer { child.finish() }
        XCTAssertEqual(child.send("ping"), "pong")
        var observer = ProcObserver(fullRescanEvery: 0)
        _ = try observer.refresh(at: now, full: true)
        var random = SeededRandom(seed: 4)
        var held: [String] = []
        var sleepers: [ScriptedChild] = []
        defer { for s in sleepers { s.process.terminate(); s.finish() } }
        var patched = 0
        // A listener here: the child connects to it, and closing our end of a connection
        // moves the child's socket to CLOSE_WAIT with nothing of the child's changing.
        let (listener, port) = try loopbackListener()
        defer { close(listener) }
        var accepted: [Int32] = []
        defer { accepted.forEach { close($0) } }
        let ops = ["file /etc/hostname", "file /etc/passwd", "pipe", "eventfd", "unix-pair", "udp", "close", "close", "close",
                   "start", "start", "stop", "tcp", "hangup"]
        func part(of g: Graph, supervisor: NodeID?) throws -> (Set<Node>, Set<Edge>) {
            let p = try XCTUnwrap(g.nodes(ofKind: .process).first { $0["pid"] == .int(Int64(child.pid)) })
            var nodes: Set<Node> = [p], edges = Set<Edge>()
            for fd in g.owned(by: p.id).compactMap({ g[$0] }) {
                nodes.insert(fd)
                for edge in g.edges(from: fd.id) {
                    edges.insert(edge)
                    if let target = g[edge.to] { nodes.insert(target) }
                }
            }
            edges.formUnion(g.edges(from: p.id).filter { $0.kind == .owns })
            let me = try XCTUnwrap(supervisor)
            for edge in g.edges(from: me) where edge.kind == .parentOf {
                edges.insert(edge)
                if let started = g[edge.to] { nodes.insert(started) }
            }
            return (nodes, edges)
        }
        for step in 0..<80 {
            let op = ops[Int(random.next() % UInt64(ops.count))]
            switch op {
            case "close":
                guard !held.isEmpty else { continue }
                XCTAssertEqual(child.send("close \(held.remove(at: Int(random.next() % UInt64(held.count))))"), "ok")
            case "start":
                // Observed once it sleeps (exec done), so the two observers do not race its start.
                let started = try ScriptedChild("/bin/sleep", ["60"])
                sleepers.append(started)
                XCTAssertTrue(waitFor { sleeping(started.pid, comm: "sleep") })
            case "tcp":
                held += child.send("tcp-connect \(port)").split(separator: " ").prefix(1).map(String.init)
                accepted.append(accept(listener, nil, nil))
            case "hangup":
                guard !accepted.isEmpty else { continue }
                close(accepted.removeFirst())
            case "stop":
                guard !sleepers.isEmpty else { continue }
                let gone = sleepers.remove(at: Int(random.next() % UInt64(sleepers.count)))
                gone.process.terminate()
                gone.process.waitUntilExit()
            default:
                held += child.send(op).split(separator: " ").map(String.init).prefix(op == "udp" ? 1 : 2)
            }
            // The child answers, then goes back to its read: observed once it sleeps there, so
            // the two observers do not race it between running and sleeping.
            XCTAssertTrue(waitFor { sleeping(child.pid, comm: "python3") })
            let observed = try observer.observe(at: now)
            let incremental = try graph(observed)
            patched += observer.lastRefresh.patched
            var fresh = ProcObserver(fullRescanEvery: 0)
            let full = try fresh.refresh(at: now, full: true)
            let expected = try part(of: graph(full), supervisor: full.supervisor)
            let got = try part(of: incremental, supervisor: observed.supervisor)
            func differing(_ a: Set<Node>, _ b: Set<Node>) -> [String] { a.subtracting(b).map { "\($0.id) \($0.attributes)" }.sorted() }
            XCTAssertEqual(differing(got.0, expected.0), [], "step \(step) (\(op)): nodes only the patched observation has")
            XCTAssertEqual(differing(expected.0, got.0), [], "step \(step) (\(op)): nodes only a fresh observer has")
            XCTAssertEqual(got.1.subtracting(expected.1).map(\.description).sorted(), [], "step \(step) (\(op)): edges only the patched observation has")
            XCTAssertEqual(expected.1.subtracting(got.1).map(\.description).sorted(), [], "step \(step) (\(op)): edges only a fresh observer has")
            let unheld = [NodeKind.file, .pipe, .socket].flatMap(incremental.nodes(ofKind:)).filter { incremental.edges(to: $0.id).isEmpty }
            XCTAssertEqual(unheld.map(\.id), [], "step \(step) (\(op)): an object no descriptor holds any more stays")
        }
        XCTAssertGreaterThan(patched, 20, "most changes were patched, not reassembled")
    }

    func testAProcessThatHasNotRun_isNotReread_yetItsNewParentIsSeen() throws {
        var observer = ProcObserver(fullRescanEvery: 0)
        guard observer.hearsProcessStarts else {
            print("SKIPPED (loudly): no process events here (needs root); every process is reread each refresh")
            return
        }
        // A parent starts a sleeper (holding none of the descriptors Foundation watches to see
        // the parent end), says its pid, and waits for a line; then exits, and the sleeper gets
        // a new parent without running.
        let script = """
            import subprocess, sys
            child = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            sys.stdin.readline(); print(child.pid, flush=True)
            sys.stdin.readline(); print("bye", flush=True)
            """
        let sh = try ScriptedChild("/usr/bin/env", ["python3", "-c", script])
        defer { sh.finish() }
        let sleeper = try XCTUnwrap(Int32(sh.send("go")))
        defer { kill(sleeper, SIGKILL) }
        XCTAssertTrue(waitFor { sleeping(sleeper, comm: "sleep") })
        func node(_ o: Observation) throws -> Node {
            try XCTUnwrap(o.nodes.first { $0.kind == .process && $0["pid"] == .int(Int64(sleeper)) })
        }
        XCTAssertEqual(try node(observer.refresh(at: now, full: true))["ppid"], .int(Int64(sh.pid)))
        _ = try observer.observe(at: now)  // opens each schedstat: the first look at whether it ran
        _ = try observer.observe(at: now)
        XCTAssertGreaterThan(observer.lastRefresh.notRun, 0, "sleeping processes are not reread")

        // Its parent exits: it is re-parented without running.
        XCTAssertEqual(sh.send("bye"), "bye")
        sh.finish()
        XCTAssertTrue(waitFor { procStat(sleeper).map { $0.ppid != sh.pid } == true })
        let adopted = try XCTUnwrap(procStat(sleeper)).ppid
        XCTAssertEqual(try node(observer.observe(at: now))["ppid"], .int(Int64(adopted)))
        var fresh = ProcObserver(fullRescanEvery: 0)
        XCTAssertEqual(try node(observer.observe(at: now)), try node(fresh.refresh(at: now, full: true)), "as a fresh observer reads it")
    }

    func testProcessEvents_spareTheListingOfProc_andNoNewProcessIsMissed() throws {
        var observer = ProcObserver(fullRescanEvery: 0)
        guard observer.hearsProcessStarts else {
            throw XCTSkip("NO PROCESS EVENTS — SKIPPED: the process-events connector needs root (CAP_NET_ADMIN); every refresh lists /proc")
        }
        _ = try observer.refresh(at: now, full: true)
        // A quiet refresh lists /proc only if some process on the machine started since the
        // last one: of up to 50 back to back (a busy machine forks now and then), one finds none did.
        var quiet = false
        for _ in 0..<50 where !quiet {
            _ = try observer.observe(at: now)
            quiet = !observer.lastRefresh.listedProcesses
        }
        XCTAssertTrue(quiet, "no refresh was spared the listing")
        // A process started after the last refresh is seen by the next one.
        let child = try ScriptedChild("/bin/sleep", ["30"])
        defer { child.process.terminate(); child.finish() }
        XCTAssertTrue(try observer.observe(at: now).nodes.contains { $0.kind == .process && $0["pid"] == .int(Int64(child.pid)) })
        XCTAssertTrue(observer.lastRefresh.listedProcesses)
        // So is one started after a burst that overflows the events' buffer.
        for _ in 0..<200 {
            var pid: pid_t = 0
            let argv: [UnsafeMutablePointer<CChar>?] = [strdup("true"), nil]
            XCTAssertEqual(posix_spawn(&pid, "/bin/true", nil, nil, argv, environ), 0)
            argv.forEach { free($0) }
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        let last = try ScriptedChild("/bin/sleep", ["30"])
        defer { last.process.terminate(); last.finish() }
        XCTAssertTrue(try observer.observe(at: now).nodes.contains { $0.kind == .process && $0["pid"] == .int(Int64(last.pid)) })
        // One that exec's is read anew: its command line is the new program's.
        let shell = try ScriptedChild("/bin/sh", ["-c", "read line; echo ok; exec /bin/sleep 60"])
        defer { shell.process.terminate(); shell.finish() }
        let cmdline = { (o: Observation) in o.nodes.first { $0.kind == .process && $0["pid"] == .int(Int64(shell.pid)) }?["cmdline"] }
        XCTAssertTrue(waitFor { (try? String(contentsOfFile: "/proc/\(shell.pid)/cmdline", encoding: .utf8))?.hasPrefix("/bin/sh") == true })
        XCTAssertEqual(cmdline(try observer.observe(at: now)), .string("/bin/sh -c read line; echo ok; exec /bin/sleep 60"))
        XCTAssertEqual(shell.send("go"), "ok")
        XCTAssertTrue(waitFor { (try? String(contentsOfFile: "/proc/\(shell.pid)/cmdline", encoding: .utf8))?.hasPrefix("/bin/sleep") == true })
        XCTAssertEqual(cmdline(try observer.observe(at: now)), .string("/bin/sleep 60"))
        // And one that exits is gone from the next refresh, listed or not.
        child.process.terminate()
        child.process.waitUntilExit()
        XCTAssertFalse(try observer.observe(at: now).nodes.contains { $0.kind == .process && $0["pid"] == .int(Int64(child.pid)) })
    }
}
