import LoopCore

/// The outcome predictor's names: a return's class (``outcomeClass(_:_:)``), and the general
/// shape of a target's name.
public enum OutcomeLabel {
    public static func of(_ call: ResolvedCall, _ result: CallResult) -> String { outcomeClass(call, result) }

    /// A name's digits as `#`: `data-2.txt` and `data-0.txt` are one kind of target.
    static func shape(_ text: Substring) -> String {
        var out = ""
        var inDigits = false
        for c in text {
            if c.isASCII, c.isNumber {
                if !inDigits { out.append("#") }
                inDigits = true
            } else {
                out.append(c)
                inDigits = false
            }
        }
        return out
    }

    static func basename(_ path: String) -> Substring {
        path.split(separator: "/", omittingEmptySubsequences: true).last ?? Substring(path)
    }
}

/// What the predictor knows of one context while it runs (a session: one run folder's trace,
/// or one supervisor's life): what each descriptor and child it holds came from, what each
/// object it touched last returned, and the return of the step before in this proposal.
struct SessionState {
    /// A descriptor's origin: the general key and the concrete object (`open data-#.txt`,
    /// `/…/data-2.txt`).
    var handles: [Int64: (key: String, object: String)] = [:]
    var children: [Int64: (key: String, object: String)] = [:]
    /// The last label each concrete object returned, by operation.
    var history: [String: String] = [:]
    var previous = "start"

    /// The features of a call, most specific first: the levels the count model backs off along.
    func features(_ call: ResolvedCall, context: String) -> [String] {
        let (target, object, family) = describe(call)
        let op = call.op.rawValue
        let last = history[op + " " + object] ?? "never"
        return [
            "\(op)|\(target)|\(context)|\(last)|\(previous)",
            "\(op)|\(target)|\(last)",
            "\(op)|\(target)",
            "\(op)|\(family)",
            op,
        ]
    }

    /// The call's target: its general key (what generalises across sessions), the concrete
    /// object (what history is kept for), and the family of the key (what opened a descriptor).
    func describe(_ call: ResolvedCall) -> (target: String, object: String, family: String) {
        switch call.op {
        case .open, .openat, .watch:
            let path = call.path ?? "?"
            let mode = call.string(.mode) ?? "read"
            return ("\(mode) \(OutcomeLabel.shape(OutcomeLabel.basename(path)))", path, "path")
        case .spawn:
            let path = call.path ?? "?"
            let args = call.string(.args).map { " " + OutcomeLabel.shape(Substring($0)) } ?? ""
            return ("\(OutcomeLabel.basename(path))\(args)", path + " " + (call.string(.args) ?? ""), "program")
        case .waitpid, .kill:
            guard let pid = call.int(.pid), let child = children[pid] else { return ("unknown child", "pid?", "child") }
            return ("child " + child.key + (call.string(.signal).map { " " + $0 } ?? ""), child.object, "child")
        case .act:
            let device = call.string(.device) ?? "?", action = call.string(.action) ?? "?"
            return ("\(device) \(action)", "\(device) \(action) \(call.string(.params) ?? "")", device)
        case .gpioSet, .gpioGet:
            let line = "\(call.string(.chip) ?? "?")/\(call.string(.line) ?? "?")"
            return (line, line, "gpio")
        case .usbTransfer, .usbControl:
            let device = call.string(.device) ?? "?"
            return ("\(device) ep\(call.int(.endpoint) ?? 0)", device, "usb")
        case .pipe, .socket, .timer, .inotify:
            let what = [call.string(.domain), call.string(.`type`)].compactMap { $0 }.joined(separator: " ")
            return (what, call.op.rawValue, "new")
        default:
            let fd = call.int(.fd) ?? call.int(.dir) ?? -1
            guard let handle = handles[fd] else { return ("fd not held", "fd \(fd)", "fd") }
            return ("of " + handle.key, handle.object, String(handle.key.prefix { $0 != " " }))
        }
    }

    /// Take in what a call returned (really, or as dreamed).
    mutating func record(_ call: ResolvedCall, _ result: CallResult, label: String) {
        let (target, object, _) = describe(call)
        history[call.op.rawValue + " " + object] = label
        previous = label
        guard let value = result.value else { return }
        if call.op.returnsDescriptor {
            handles[value] = ("\(call.op.rawValue) \(target)", object)
            if let w = result.fields["write-fd"] { handles[w] = ("pipe-write \(target)", object + " (write end)") }
        }
        switch call.op {
        case .close: if let fd = call.int(.fd) { handles[fd] = nil }
        case .spawn: children[value] = (target, object)
        case .waitpid where value > 0: children[value] = nil
        default: break
        }
    }
}
