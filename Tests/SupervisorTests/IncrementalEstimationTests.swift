import Attached
import Estimator
import Foundation
import Glibc
import LoopCore
import StateGraph
import Supervisor
import WorldOSTesting
import XCTest

/// The estimator's two ways to a posterior — from the observation's change since the last one
/// and what the fold did, or from the whole observation — give the same posterior, surprise
/// and delta, step by step, on the real supervisor with the default bench acting (descriptors
/// held across steps, a supervised program, denials) while processes start and exit and this
/// process opens and closes descriptors.
final class IncrementalEstimationTests: XCTestCase {
    final class Tally: @unchecked Sendable {
        var fromChange = 0, whole = 0
        var mismatches: [String] = []
    }

    /// The live estimator, checked against itself: every posterior made from a change is made
    /// again from the whole observation and compared.
    struct Checked: Estimating {
        let inner = LiveEstimator()
        let tally: Tally
        /// As the live estimator: the loop lets go of its memory while the posterior is made.
        var ownsPrior: Bool { inner.ownsPrior }
        func prior(from memory: Graph, step: Int, at now: Instant) -> Prior { inner.prior(from: memory, step: step, at: now) }
        func fold(_ outcome: ActionOutcome?, into posterior: Posterior, at now: Instant) -> Graph { inner.fold(outcome, into: posterior, at: now) }
        func posterior(from prior: consuming Prior, observation: Observation?, at now: Instant) throws -> Posterior {
            var plain = copy prior
            plain.basis = nil
            let (step, basis) = (prior.step, prior.basis)
            let made = try inner.posterior(from: prior, observation: observation, at: now)
            guard let observation, let change = observation.change, let basis, basis.integrated == change.since else {
                tally.whole += 1
                return made
            }
            tally.fromChange += 1
            let whole = try inner.posterior(from: plain, observation: observation, at: now)
            if made.graph != whole.graph || made.surprise != whole.surprise || made.change != whole.change {
                let extra = made.graph.nodes.keys.filter { whole.graph[$0] != made.graph[$0] }.prefix(5)
                let lacking = whole.graph.nodes.keys.filter { made.graph[$0] == nil }.prefix(5)
                tally.mismatches.append("step \(step): surprise \(String(describing: made.surprise)) vs \(String(describing: whole.surprise)); "
                                        + "differ \(Array(extra)), lacking \(Array(lacking)); edges \(made.graph.edgeCount) vs \(whole.graph.edgeCount)")
            }
            return made
        }
    }

    func testPosteriorFromTheChange_isThePosteriorFromTheWholeObservation_onTheDefaultBench() throws {
        let directory = try temporaryDirectory("incremental")
        var options = SupervisorOptions()
        options.bench = repositoryRoot.appendingPathComponent("Devices/benches/default.yaml").path
        options.policy = repositoryRoot.appendingPathComponent("Policies/default.yaml").path
        options.out = directory + "/out"
        try check(Supervisor.make(options), steps: 60)
    }

    /// A context that keeps what it opens and starts children that exit: the fold adds
    /// descriptors and processes to the supervisor's part of the graph every step, and the
    /// next observation confirms them or not — not, when a descriptor the context was given is
    /// closed behind the supervisor's back before the next look.
    func testPosteriorFromTheChange_isThePosteriorFromTheWholeObservation_whileTheFoldAddsToTheKernel() throws {
        let directory = try temporaryDirectory("incremental-fold")
        try write("version: 1\ncontexts:\n  probe:\n    interval-ms: 0\n    tasks:\n      keep-open:\n        - open: { path: /etc/hostname }\n"
                  + "      start-child:\n        - spawn: { path: /bin/sleep, args: \"0.2\" }\n",
                  to: directory + "/bench.yaml")
        try write("version: 1\ncontexts:\n  probe:\n    allow:\n      - op: open\n        path: /etc/hostname\n      - op: spawn\n        path: /usr/bin/sleep\n"
                  , to: directory + "/policy.yaml")
        var options = SupervisorOptions()
        options.bench = directory + "/bench.yaml"
        options.policy = directory + "/policy.yaml"
        options.out = directory + "/out"
        try check(Supervisor.make(options), steps: 45, closingBehindItsBack: true)
    }

    private func check(_ made: SupervisorLoop, steps: Int, closingBehindItsBack: Bool = false) throws {
        var loop = made
        let tally = Tally()
        loop.estimator = Checked(tally: tally)
        var held: [Int32] = [], children: [Process] = []
        var closed = 0
        defer {
            held.forEach { close($0) }
            children.forEach { $0.terminate() }
            try? loop.finish()
            (loop.host as? BenchHost)?.closeAll()
        }
        for step in 0..<steps {
            // This process opens a descriptor, or closes one; now and then a process starts,
            // and the ones started earlier exit.
            if step % 2 == 0 { held.append(open("/dev/null", O_RDONLY)) } else if let fd = held.popLast(), step % 3 == 0 { close(fd) }
            if step % 4 == 0 {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: "/bin/sleep")
                p.arguments = ["0.3"]
                try p.run()
                children.append(p)
            }
            try loop.step()
            if closingBehindItsBack, step % 3 == 2, let fd = (loop.host as? BenchHost)?.linux.open.max() {
                close(fd)
                closed += 1
            }
        }
        XCTAssertEqual(tally.mismatches, [])
        if closingBehindItsBack { XCTAssertGreaterThan(closed, 5) }
        XCTAssertGreaterThan(tally.fromChange, steps * 2 / 3, "most steps are made from the change (\(tally.whole) from the whole observation)")
        XCTAssertGreaterThanOrEqual(tally.whole, 1, "the first step looks at everything")
    }
}
