/// Reading another actor's public card: the proof that an actor id is reachable on a store.
///
/// A card is the public box entry of an actor: an envelope `content → #card, signature → PSS(card)`
/// signed by the actor, whose card names the actor's public key (`public key → #actor id`). The
/// public key object is on the store too, and its hash is the actor id, so nothing else needs to be
/// trusted: a card that verifies with that key was written by the actor.
public enum PublicCard {
    /// Why an actor's card could not be read on a store; each says what to do, in one line.
    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        /// The store could not be asked (the text of the store's error).
        case unreachable(String, String)
        /// The store does not have the actor's public key object.
        case noPublicKey(Hash, String)
        /// No envelope in the public box verifies as the actor's card.
        case noCard(Hash, String)

        public var description: String {
            switch self {
            case .unreachable(let url, let why): return "cannot read \(url): \(why)"
            case .noPublicKey(let actor, let url):
                return "\(url) does not know the actor \(actor.hex): check the id and the store URL (the line their `cdsfs key show` prints)"
            case .noCard(let actor, let url):
                return "\(url) has no public card of \(actor.hex) signed by that actor: they should run `cdsfs sync` so that their device announces itself there"
            }
        }
    }

    /// A verified card: the actor's public key and the card's record (which may announce the
    /// actor's group, see `Home.announce`).
    public struct Verified: Sendable {
        public let publicKey: PublicKey
        public let card: Record
    }

    /// Reads and verifies `actor`'s public card on `store`.
    public static func read(_ actor: Hash, on store: any Store) throws(Failure) -> Verified {
        let keyObject: Object?
        let entries: [Hash]
        do {
            keyObject = try store.get(actor)
            entries = try store.list(actor, .public)
        } catch {
            throw .unreachable(store.url, "\(error)")
        }
        guard let keyObject, let key = try? PublicKey(object: keyObject), key.hash == actor else {
            throw .noPublicKey(actor, store.url)
        }
        for entry in entries {
            guard let envelope = try? store.get(entry),
                  let cardHash = try? Envelope.openPublic(envelope, signer: key),
                  let cardObject = try? store.get(cardHash),
                  let card = try? Record(object: cardObject),
                  card.hash("public key") == actor else { continue }
            return Verified(publicKey: key, card: card)
        }
        throw .noCard(actor, store.url)
    }
}
