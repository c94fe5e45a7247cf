import ArgumentParser
import Benches
import Foundation
import Journal
import Service
import Supervisor

struct Act: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask the running supervisor to perform a named action as one of its execution contexts.",
        discussion: """
        The request goes to the running supervisor over its control socket (or, when none answers \
        there, is left in its run folder). The action runs at the context's next turn, under that \
        context's policy and through the guard, and is traced and audited like anything the context proposes. Prints the guard's decision and, \
        when it ran, what the device returned. An irreversible action prints the approval request to \
        answer with worldos approve; run the same act again once it is approved. Exits 0 when the action \
        ran, 1 when it did not, 2 when no supervisor answered in time (the request is then withdrawn).
        """)
    @Argument(help: "The action, as its device profile names it (relay.release).") var name: String
    @Argument(help: "Parameters, key=value (relay=0).") var parameters: [String] = []
    @Option(help: "The execution context to act as; its policy applies.") var context: String
    @Option(help: "The device profile to act on (default: the one attached device that offers the action).") var device: String?
    @Option(help: "Seconds to wait for the supervisor.") var timeout: Double = 30
    @OptionGroup var folder: RunFolderOption

    func validate() throws {
        guard name.allSatisfy({ $0.isLetter || $0.isNumber || "._-".contains($0) }), !name.isEmpty else {
            throw ValidationError("action \"\(name)\" may use letters, digits, . _ and -")
        }
        for p in parameters {
            let kv = p.split(separator: "=", maxSplits: 1)
            guard kv.count == 2, !kv[0].isEmpty, !kv[1].contains(",") else {
                throw ValidationError("parameter \"\(p)\" is not key=value (no commas in a value)")
            }
        }
    }

    func run() throws {
        var params: [String: String] = [:]
        for p in parameters {
            let kv = p.split(separator: "=", maxSplits: 1).map(String.init)
            guard params.updateValue(kv[1], forKey: kv[0]) == nil else { throw ValidationError("parameter \(kv[0]) is given twice") }
        }
        var request: [String: Any] = ["op": "act", "context": context, "action": name, "params": params, "timeout-s": max(1, Int(timeout.rounded()))]
        if let device { request["device"] = device }
        do {
            let answer = try ControlClient.ask(folder.run.control, request, timeout: Int(timeout.rounded()) * 2 + 10)
            guard let verdict = answer["verdict"] as? String else {
                let error = answer["error"] as? String ?? "the supervisor gave no answer"
                FileHandle.standardError.write(Data("worldos act: \(error)\n".utf8))
                // Not answered in time: 2, as when nobody takes a dropped request.
                throw ExitCode(error.contains("gave no answer in") || error.contains("take the request within") ? 2 : 1)
            }
            say("\(verdict) (\(answer["rule"] ?? ""))" + ((answer["reason"] as? String).map { ": \($0)" } ?? ""))
            if let request = answer["approval"] as? String {
                say("approve with: worldos approve \(request) --out \(folder.out), then run this again")
            }
            if let result = answer["result"] as? String { say("result: \(result)") }
            throw ExitCode(verdict == "allow" ? 0 : 1)
        } catch is ControlClient.NotRunning {
            // No control socket: leave the request in the run folder, as before.
        } catch let e as ServiceError { throw CLIFailure(e.description) }
        let inbox = ActionInbox(directory: folder.run.requests)
        let id = String(format: "%016llx", UInt64.random(in: .min ... .max))
        try inbox.submit(ActionRequest(id: id, context: context, device: device, action: name, params: params, requestedBy: userName()))
        var deadline = Date().addingTimeInterval(timeout), taken = false
        while true {
            if Date() >= deadline {
                // Withdrawn before anyone took it: it will never run. Taken: it is running now;
                // wait once more for its answer.
                if taken || inbox.withdraw(id) { break }
                taken = true
                deadline = Date().addingTimeInterval(timeout)
            }
            if let reply = inbox.reply(to: id) {
                inbox.forget(id)
                say("\(reply.verdict) (\(reply.rule))" + (reply.reason.map { ": \($0)" } ?? ""))
                if reply.verdict == "needs-approval", let request = reply.rule.split(separator: " ").last {
                    say("approve with: worldos approve \(request) --out \(folder.out), then run this again")
                }
                if let result = reply.result { say("result: \(result)") }
                throw ExitCode(reply.verdict == "allow" ? 0 : 1)
            }
            usleep(50_000)
        }
        if !taken { inbox.forget(id) }
        FileHandle.standardError.write(Data((taken
            ? "worldos act: the supervisor took request \(id) but gave no answer; its outcome is in the audit log (worldos audit verify --out \(folder.out))\n"
            : "worldos act: no supervisor with --out \(folder.out) took the request within \(timeout) s; withdrawn, it will not run\n").utf8))
        throw ExitCode(2)
    }
}
