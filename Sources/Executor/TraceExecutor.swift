import LoopCore
import StateGraph

/// Unrolls a proposal into micro-steps, in order. Each step's `$N` arguments are replaced by the
/// return of step N; a step whose dependency failed or was denied is skipped, never guessed.
/// Every resolved step goes to the guard first; only an allowed step reaches the effector.
///
/// With a resolver (``NameResolving``), a call that names a file-system object is given that
/// object's canonical name and identity before the guard decides, so the decision and the host's
/// open are on the same object whatever spelling the proposal used.
public struct TraceExecutor: Executing {
    public var names: (any NameResolving)?
    public init(names: (any NameResolving)? = nil) { self.names = names }

    public mutating func execute(_ proposal: Proposal, context: Node, held: Holdings, guard policy: inout any Guarding,
                                 effector: inout any Effecting, shadow: (any Effecting)?, at now: Instant) -> ActionOutcome {
        var held = held
        var shadow = shadow
        // A learned predictor is told the proposal, and each return: the machine's when it
        // shadows the host, its own dream's when it stands in for it.
        let learner = (shadow as? any Predicting).map { ($0, true) } ?? (effector as? any Predicting).map { ($0, false) }
        learner?.0.begin(proposal)
        var outcomes: [StepOutcome] = []
        for (index, step) in proposal.steps.enumerated() {
            let call: ResolvedCall
            switch resolve(step, index: index, earlier: outcomes) {
            case .failure(.dependency(let why)):
                outcomes.append(StepOutcome(index: index, step: step, call: nil, decision: nil, status: .skipped(reason: why)))
                continue
            case .failure(.invalid(let why)):
                outcomes.append(StepOutcome(index: index, step: step, call: nil, decision: nil, status: .invalid(reason: why)))
                continue
            case .success(let resolved):
                call = names?.resolve(resolved) ?? resolved
            }
            let decision = policy.decide(call, context: context, held: held, at: now)
            guard decision.isAllowed else {
                outcomes.append(StepOutcome(index: index, step: step, call: call, decision: decision, status: .denied))
                continue
            }
            let predicted = shadow?.perform(call)
            let result = effector.perform(call)
            policy.recordOutcome(call, context: proposal.context, result: result, at: now)
            let probability = learner.map { learner, real in learner.observe(result, of: call, real: real) }
            if let probability, learner?.1 == true {
                policy.notePrediction(call, context: proposal.context, result: result, probability: probability, at: now)
            }
            held.record(call, result)
            outcomes.append(StepOutcome(index: index, step: step, call: call, decision: decision,
                                        status: .performed(result), predicted: predicted, probability: probability))
        }
        return ActionOutcome(proposal: proposal, steps: outcomes)
    }

    enum ResolutionError: Error {
        case dependency(String)
        case invalid(String)
    }

    func resolve(_ step: MicroStep, index: Int, earlier: [StepOutcome]) -> Result<ResolvedCall, ResolutionError> {
        var args: [String: Value] = [:]
        let parameters = step.op.parameters
        for name in step.args.keys.sorted() where !parameters.contains(where: { $0.name.rawValue == name }) {
            return .failure(.invalid("\(step.op.rawValue) takes no argument \"\(name)\""))
        }
        for parameter in parameters {
            guard let argument = step[parameter.name] else {
                if parameter.required { return .failure(.invalid("\(step.op.rawValue) needs argument \"\(parameter.name.rawValue)\"")) }
                continue
            }
            let value: Value
            switch argument {
            case .int(let v): value = .int(v)
            case .string(let s): value = .string(s)
            case .result(let n, let field):
                guard n >= 0, n < index else {
                    return .failure(.invalid("$\(n) refers to step \(n), which has not run before step \(index)"))
                }
                guard let result = earlier[n].result, let returned = result.value else {
                    return .failure(.dependency("step \(n) did not return a value"))
                }
                if let field {
                    guard let f = result.fields[field] else { return .failure(.dependency("step \(n) returned no field \"\(field)\"")) }
                    value = .int(f)
                } else {
                    value = .int(returned)
                }
            }
            switch (parameter.type, value) {
            case (.int, .int), (.string, .string): args[parameter.name.rawValue] = value
            default: return .failure(.invalid("\(step.op.rawValue) argument \"\(parameter.name.rawValue)\" must be \(parameter.type.rawValue)"))
            }
        }
        return .success(ResolvedCall(step.op, args))
    }
}
