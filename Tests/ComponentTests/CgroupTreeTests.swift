import CShim
import Foundation
import Glibc
import LoopCore
@testable import Observer
import StateGraph
import WorldOSTesting
import XCTest

final class CgroupTreeTests: XCTestCase {
    func testMountPoint_isTheUnifiedHierarchysMountedFromItsRoot() {
        func mount(_ text: String) -> String? { CgroupTree.mountPoint(mountinfo: Array(text.utf8)) }
        let v1 = "35 28 0:30 / /sys/fs/cgroup/cpu rw,relatime shared:12 - cgroup cgroup rw,cpu\n"
        XCTAssertEqual(mount(v1 + "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"), "/sys/fs/cgroup/unified")
        XCTAssertEqual(mount("29 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 master:1 - cgroup2 cgroup2 rw,nsdelegate\n"), "/sys/fs/cgroup",
                       "optional fields before the dash")
        XCTAssertNil(mount(v1), "v1 only")
        XCTAssertNil(mount("41 31 0:38 /sub /mnt/cg rw - cgroup2 cgroup2 rw\n"), "not mounted from its root")
        XCTAssertNil(mount("41 31 0:38 / /mnt/my\\040cg rw - cgroup2 cgroup2 rw\n"), "an escaped mount point")
        XCTAssertNil(mount("garbage\n41 31 -\n\n - cgroup2\n"), "malformed lines name nothing")
    }

    func testPids_areDecimalLines_andAnythingElseIsRefused() {
        XCTAssertEqual(CgroupTree.parsePids(Array("1\n22\n333\n".utf8)), [1, 22, 333])
        XCTAssertEqual(CgroupTree.parsePids([]), [])
        for bad in ["1\nx2\n", "-1\n", "99999999999\n", "1 2\n"] {
            XCTAssertNil(CgroupTree.parsePids(Array(bad.utf8)), bad)
        }
    }

    func testWalk_namesEachProcessByItsCgroupsPath_andRefusesAnUnreadableTree() throws {
        let root = NSTemporaryDirectory() + "worldos-cgroup-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        func cgroup(_ path: String, _ procs: String?) throws {
            try FileManager.default.createDirectory(atPath: root + path, withIntermediateDirectories: true)
            if let procs { try procs.write(toFile: root + path + "/cgroup.procs", atomically: false, encoding: .utf8) }
        }
        try cgroup("", "1\n2\n")
        try cgroup("/system.slice", "")
        try cgroup("/system.slice/a.service", "10\n")
        try cgroup("/user.slice", "11\n12\n")
        XCTAssertEqual(CgroupTree.walk(root), [1: "/", 2: "/", 10: "/system.slice/a.service", 11: "/user.slice", 12: "/user.slice"])
        XCTAssertNil(CgroupTree.walk(root, limit: 3), "more cgroups than the limit")
        try cgroup("/broken", "7\nseven\n")
        XCTAssertNil(CgroupTree.walk(root), "a malformed cgroup.procs")
        try FileManager.default.removeItem(atPath: root + "/broken/cgroup.procs")
        XCTAssertNil(CgroupTree.walk(root), "a cgroup without its cgroup.procs")
    }

    func testAFullRefresh_readsCgroupsFromTheTree_asProcShowsThem() throws {
        let mountinfo = try Array(XCTUnwrap(FileHandle(forReadingAtPath: "/proc/self/mountinfo")).readDataToEndOfFile())
        guard CgroupTree.mountPoint(mountinfo: mountinfo) != nil else {
            print("SKIPPED (loudly): no unified cgroup hierarchy mounted here; cgroups are read per process")
            return
        }
        var observer = ProcObserver(fullRescanEvery: 0)
        let o = try observer.refresh(at: Instant(nanoseconds: 1), full: true)
        let processes = o.nodes.filter { $0.kind == .process }
        XCTAssertLessThan(observer.lastRefresh.cgroupReads, processes.count / 2, "most cgroups came from the tree")
        var compared = 0
        for p in processes {
            guard case .int(let pid)? = p["pid"],
                  let bytes = try? Array(XCTUnwrap(FileHandle(forReadingAtPath: "/proc/\(pid)/cgroup")).readDataToEndOfFile()) else { continue }
            XCTAssertEqual(p["cgroup"], .string(parseCgroup(bytes)), "process \(pid)")
            compared += 1
        }
        XCTAssertGreaterThan(compared, 10)
    }
}
