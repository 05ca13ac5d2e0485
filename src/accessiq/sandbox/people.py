"""A seeded generator of a realistic organisation: people, departments, teams, offices, projects.

Provider-neutral on purpose: each sandbox (Graph, Okta, Google) turns a
`Population` into its own wire records. The same seed always gives the same
people and groups, so tests and benchmarks can name what they expect.
"""

from __future__ import annotations

import random
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

# fmt: off
GIVEN_NAMES = (
    "Ada", "Alan", "Grace", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Frances", "Edsger",
    "Radia", "Tim", "Hedy", "Donald", "Katherine", "John", "Dorothy", "Claude", "Annie", "Guido",
    "Sophie", "Lucas", "Emma", "Noah", "Olivia", "Liam", "Mia", "Elias", "Hannah", "Jonas",
    "Amara", "Chinedu", "Ngozi", "Kwame", "Ayodele", "Zanele", "Thabo", "Wanjiru", "Kofi", "Imani",
    "Wei", "Mei", "Hiroshi", "Yuki", "Sakura", "Haruto", "Ji-woo", "Min-jun", "Seo-yeon", "Anh",
    "Priya", "Arjun", "Ananya", "Rohan", "Aisha", "Omar", "Fatima", "Yusuf", "Layla", "Karim",
    "José", "María", "Lucía", "Mateo", "Valentina", "Santiago", "Camila", "Diego", "Isabela", "Joaquín",
    "Zoë", "Chloé", "Léa", "Hélène", "François", "Björn", "Åsa", "Søren", "Märta", "Jürgen",
    "Siobhan", "Niamh", "Seán", "Aoife", "Ciarán", "Eilidh", "Hamish", "Rhys", "Gwen", "Dafydd",
    "Olga", "Dmitri", "Irina", "Pavel", "Agnieszka", "Tomasz", "Zuzana", "Petr", "Eszter", "Bence",
    "Kai", "Leilani", "Mana", "Tane", "Aroha", "Maya", "Ethan", "Ava", "Jacob", "Isla",
)
SURNAMES = (
    "Lovelace", "Turing", "Hopper", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson", "Allen",
    "Dijkstra", "Perlman", "Berners-Lee", "Lamarr", "Knuth", "Johnson", "McCarthy", "Vaughan", "Shannon",
    "Easley", "van Rossum", "Smith", "Jones", "Williams", "Brown", "Taylor", "Davies", "Evans", "Wilson",
    "Okafor", "Mensah", "Adeyemi", "Nkosi", "Mwangi", "Boateng", "Diallo", "Kamau", "Abubakar", "Dlamini",
    "Wang", "Li", "Zhang", "Chen", "Sato", "Suzuki", "Takahashi", "Kim", "Park", "Nguyen",
    "Patel", "Sharma", "Iyer", "Reddy", "Khan", "Hussain", "Haddad", "Mansour", "Farouk", "Rahman",
    "García", "Fernández", "López", "Martínez", "Rodríguez", "Pérez", "Gómez", "Díaz", "Muñoz", "Álvarez",
    "Dubois", "Lefèvre", "Moreau", "Müller", "Schröder", "Weiß", "Öztürk", "Ødegaard", "Lindqvist", "Nyström",
    "O'Brien", "O'Connor", "MacLeod", "Murphy", "Kelly", "Byrne", "Jenkins", "Hughes", "Morgan", "Price",
    "Ivanova", "Petrov", "Kowalski", "Nowak", "Novák", "Horváth", "Nagy", "Popescu", "Jovanović", "Kovač",
)
DEPARTMENTS: dict[str, tuple[str, ...]] = {
    "Engineering": ("Platform", "Identity", "Mobile", "Data", "Security", "Quality"),
    "Product": ("Product Management", "Design", "Research"),
    "Sales": ("EMEA Sales", "Americas Sales", "APAC Sales", "Sales Operations"),
    "Marketing": ("Brand", "Growth", "Product Marketing"),
    "Support": ("Tier 1", "Tier 2", "Customer Success"),
    "Finance": ("Accounting", "FP&A", "Procurement"),
    "People": ("Recruiting", "People Operations"),
    "Legal": ("Legal Operations", "Compliance"),
    "Operations": ("IT", "Facilities"),
}
# Departments are not equally large: weights for drawing a person's department.
DEPARTMENT_WEIGHTS = (30, 8, 18, 8, 14, 6, 5, 3, 8)
TITLES: dict[str, tuple[str, ...]] = {
    "Engineering": ("Software Engineer", "Senior Software Engineer", "Staff Engineer", "Engineering Manager",
                    "Site Reliability Engineer", "Security Engineer"),
    "Product": ("Product Manager", "Product Designer", "UX Researcher", "Director of Product"),
    "Sales": ("Account Executive", "Sales Development Representative", "Sales Engineer", "Regional Director"),
    "Marketing": ("Marketing Manager", "Content Strategist", "Growth Analyst", "Brand Designer"),
    "Support": ("Support Specialist", "Support Engineer", "Customer Success Manager", "Support Lead"),
    "Finance": ("Accountant", "Financial Analyst", "Controller", "Procurement Specialist"),
    "People": ("Recruiter", "People Partner", "HR Generalist", "Head of People"),
    "Legal": ("Counsel", "Paralegal", "Compliance Officer"),
    "Operations": ("IT Administrator", "Helpdesk Technician", "Facilities Coordinator", "Office Manager"),
}
# (office, city, country code, preferred language, phone prefix)
OFFICES = (
    ("London", "London", "GB", "en-GB", "+44 20 7946"),
    ("Dublin", "Dublin", "IE", "en-IE", "+353 1 555"),
    ("Berlin", "Berlin", "DE", "de-DE", "+49 30 5555"),
    ("Paris", "Paris", "FR", "fr-FR", "+33 1 5555"),
    ("New York", "New York", "US", "en-US", "+1 212 555"),
    ("Seattle", "Seattle", "US", "en-US", "+1 206 555"),
    ("Singapore", "Singapore", "SG", "en-SG", "+65 6555"),
    ("São Paulo", "São Paulo", "BR", "pt-BR", "+55 11 5555"),
)
PROJECT_WORDS = (
    "Atlas", "Beacon", "Cobalt", "Delta", "Ember", "Falcon", "Granite", "Harbor", "Iris", "Juniper",
    "Kestrel", "Lumen", "Mosaic", "Nimbus", "Onyx", "Prism", "Quartz", "Raven", "Summit", "Tundra",
    "Umbra", "Vertex", "Willow", "Xenon", "Yarrow", "Zephyr",
)
PROJECT_KINDS = ("Project", "Guild", "Committee", "Working Group", "DL")
GUILD_TOPICS = ("Python", "Go", "Accessibility", "Observability", "Data Privacy", "Green IT", "Mentoring",
                "Toastmasters", "Running Club", "Book Club", "Hackathon", "Incident Response")
# fmt: on

_EPOCH = datetime(2019, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Person:
    """One employee, with the attributes every directory provider has some name for."""

    id: str
    given_name: str
    surname: str
    display_name: str
    # The login's local part, ASCII and unique: `ada.lovelace2`.
    username: str
    domain: str
    # Primary mail address; None for the few accounts without a mailbox.
    email: str | None
    job_title: str
    department: str
    team: str
    office: str
    city: str
    country: str
    preferred_language: str
    employee_id: str
    mobile_phone: str
    business_phone: str
    hire_date: str
    created: str
    active: bool = True
    # Some directories keep the login's original capitalisation: `Ada.Lovelace@…`.
    login_case: str = "lower"

    @property
    def login(self) -> str:
        local = self.username if self.login_case == "lower" else _title_local(self.username)
        return f"{local}@{self.domain}"


@dataclass(frozen=True)
class GroupSpec:
    """A group with its direct members; nested groups are listed in `member_groups`."""

    id: str
    name: str
    description: str
    kind: str  # all | department | team | office | project
    mail_nickname: str
    email: str | None
    member_users: tuple[str, ...] = ()
    member_groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Population:
    """A generated organisation; groups nest without cycles, `All Staff` > department > team."""

    domain: str
    people: tuple[Person, ...]
    groups: tuple[GroupSpec, ...]
    seed: int = 0
    by_id: dict[str, Person] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.by_id.update((person.id, person) for person in self.people)


class PeopleFactory:
    """Draws people from one seeded random stream; also makes the extra people a test adds later."""

    def __init__(self, seed: int = 0, domain: str = "contoso.example") -> None:
        self.rng = random.Random(seed)
        self.domain = domain
        self._usernames: set[str] = set()
        self._employee_numbers: set[int] = set()

    def reserve(self, people: tuple[Person, ...]) -> None:
        """Never hand out these people's logins again (people added to an existing population)."""
        self._usernames.update(person.username for person in people)

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def person(
        self,
        *,
        department: str | None = None,
        active: bool | None = None,
        given_name: str | None = None,
        surname: str | None = None,
    ) -> Person:
        """A new person; names given here replace the drawn ones (and shape the login)."""
        rng = self.rng
        given = rng.choice(GIVEN_NAMES)
        surname = surname or rng.choice(SURNAMES)
        given = given_name or given
        if department not in DEPARTMENTS:
            department = rng.choices(tuple(DEPARTMENTS), weights=DEPARTMENT_WEIGHTS)[0]
        team = rng.choice(DEPARTMENTS[department])
        office, city, country, language, prefix = rng.choice(OFFICES)
        username = self._unique_username(given, surname)
        number = rng.randrange(100000, 999999)
        while number in self._employee_numbers:
            number = rng.randrange(100000, 999999)
        self._employee_numbers.add(number)
        hired = _EPOCH + timedelta(days=rng.randrange(0, 6 * 365))
        has_mail = rng.random() >= 0.02
        return Person(
            id=self.new_id(),
            given_name=given,
            surname=surname,
            display_name=f"{given} {surname}",
            username=username,
            domain=self.domain,
            email=f"{username}@{self.domain}" if has_mail else None,
            job_title=rng.choice(TITLES[department]),
            department=department,
            team=team,
            office=office,
            city=city,
            country=country,
            preferred_language=language,
            employee_id=f"E{number}",
            mobile_phone=f"{prefix} {rng.randrange(1000, 9999)}",
            business_phone=f"{prefix} {rng.randrange(1000, 9999)}",
            hire_date=hired.date().isoformat(),
            created=(hired - timedelta(days=rng.randrange(1, 30))).strftime("%Y-%m-%dT%H:%M:%SZ"),
            active=(rng.random() >= 0.03) if active is None else active,
            login_case="title" if rng.random() < 0.1 else "lower",
        )

    def _unique_username(self, given: str, surname: str) -> str:
        base = f"{_ascii(given)}.{_ascii(surname)}"
        candidate, n = base, 1
        while candidate in self._usernames:
            n += 1
            candidate = f"{base}{n}"
        self._usernames.add(candidate)
        return candidate


def generate_population(
    users: int = 100, groups: int = 20, *, seed: int = 0, domain: str = "contoso.example"
) -> Population:
    """`users` people and `groups` groups, the same for the same arguments.

    Groups come in priority order, cut at `groups`: All Staff, departments,
    teams, offices, then projects, guilds and distribution lists that may nest
    earlier groups. People sit in their team (or the nearest group above it
    that exists) and in their office's group.
    """
    factory = PeopleFactory(seed, domain)
    people = tuple(factory.person() for _ in range(users))
    rng = factory.rng

    planned: list[tuple[str, str, str]] = [("all", "All Staff", "Everyone in the company")]
    planned += [("department", d, f"The {d} department") for d in DEPARTMENTS]
    planned += [("team", t, f"{t} team ({d})") for d, teams in DEPARTMENTS.items() for t in teams]
    planned += [("office", f"Office - {o[0]}", f"Everyone based in {o[1]}") for o in OFFICES]
    names_taken = {name for _, name, _ in planned}
    while len(planned) < groups:
        kind = rng.choice(PROJECT_KINDS)
        topic = rng.choice(GUILD_TOPICS if kind in ("Guild", "Committee") else PROJECT_WORDS)
        name = f"{kind} {topic}"
        n = 1
        while name in names_taken:
            n += 1
            name = f"{kind} {topic} {n}"
        names_taken.add(name)
        planned.append(("project", name, f"{kind} for {topic}"))
    planned = planned[:groups]

    ids = [factory.new_id() for _ in planned]
    by_name = {name: gid for (_, name, _), gid in zip(planned, ids, strict=True)}
    direct_users: dict[str, list[str]] = {gid: [] for gid in ids}
    nested: dict[str, list[str]] = {gid: [] for gid in ids}

    for person in people:
        home = by_name.get(person.team) or by_name.get(person.department) or by_name.get("All Staff")
        if home:
            direct_users[home].append(person.id)
        office = by_name.get(f"Office - {person.office}")
        if office:
            direct_users[office].append(person.id)
    if "All Staff" in by_name:
        nested[by_name["All Staff"]] += [by_name[d] for d in DEPARTMENTS if d in by_name]
    for department, teams in DEPARTMENTS.items():
        if department in by_name:
            nested[by_name[department]] += [by_name[t] for t in teams if t in by_name]
    for index, (kind, _, _) in enumerate(planned):
        if kind != "project" or not people:
            continue
        gid = ids[index]
        size = min(len(people), rng.randint(2, 40))
        direct_users[gid] += [p.id for p in rng.sample(people, size)]
        # Nest an earlier group now and then: a DAG, never a cycle.
        if rng.random() < 0.25:
            nested[gid].append(ids[rng.randrange(0, index)])

    specs = []
    for (kind, name, description), gid in zip(planned, ids, strict=True):
        nickname = _ascii(name).replace(".", "-").replace("&", "and")
        has_mail = kind in ("all", "department", "office") or rng.random() < 0.4
        specs.append(
            GroupSpec(
                id=gid,
                name=name,
                description=description,
                kind=kind,
                mail_nickname=nickname,
                email=f"{nickname}@{domain}" if has_mail else None,
                member_users=tuple(dict.fromkeys(direct_users[gid])),
                member_groups=tuple(dict.fromkeys(nested[gid])),
            )
        )
    return Population(domain=domain, people=people, groups=tuple(specs), seed=seed)


def _ascii(text: str) -> str:
    """`Ødegaard` -> `odegaard`: a login-safe spelling of a name."""
    text = text.replace("ß", "ss").replace("Ø", "O").replace("ø", "o").replace("Æ", "Ae").replace("æ", "ae")
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(ch for ch in decomposed if ch.isascii() and (ch.isalnum() or ch in " -"))
    return "-".join(kept.lower().split()).replace("--", "-")


def _title_local(local: str) -> str:
    return ".".join(part[:1].upper() + part[1:] for part in local.split("."))
