"""The fixed vocabulary of a generated company: its chart of accounts (plan comptable général), journals,
VAT rates, and the name pools third parties, products and categories are drawn from."""

from __future__ import annotations

from decimal import Decimal

# General accounts (PCG). Customers and suppliers each get their own account under 411 / 401
# (`THIRD_PARTY_PREFIX` + five digits); in the FEC those lines carry the collective account below as
# CompteNum and the third party's account as CompAuxNum.
GENERAL_ACCOUNTS: tuple[tuple[str, str], ...] = (
    ("101000", "Capital"),
    ("106100", "Réserve légale"),
    ("120000", "Résultat de l'exercice (bénéfice)"),
    ("164000", "Emprunts auprès des établissements de crédit"),
    ("218300", "Matériel de bureau et matériel informatique"),
    ("281830", "Amortissements du matériel informatique"),
    ("401000", "Fournisseurs"),
    ("408100", "Fournisseurs - factures non parvenues"),
    ("411000", "Clients"),
    ("421000", "Personnel - rémunérations dues"),
    ("431000", "Sécurité sociale"),
    ("437200", "Mutuelle"),
    ("445510", "TVA à décaisser"),
    ("445660", "TVA déductible sur autres biens et services"),
    ("445710", "TVA collectée"),
    ("455000", "Associés - comptes courants"),
    ("471000", "Compte d'attente"),
    ("486000", "Charges constatées d'avance"),
    ("530000", "Caisse"),
    ("580000", "Virements internes"),
    ("601000", "Achats stockés - matières premières"),
    ("604000", "Achats d'études et prestations de services"),
    ("606100", "Fournitures non stockables (eau, énergie)"),
    ("606300", "Fournitures d'entretien et de petit équipement"),
    ("606400", "Fournitures administratives"),
    ("607000", "Achats de marchandises"),
    ("611000", "Sous-traitance générale"),
    ("613200", "Locations immobilières"),
    ("615000", "Entretien et réparations"),
    ("616000", "Primes d'assurances"),
    ("618500", "Frais de colloques, séminaires, conférences"),
    ("622600", "Honoraires"),
    ("623000", "Publicité, publications, relations publiques"),
    ("625100", "Voyages et déplacements"),
    ("625700", "Réceptions"),
    ("626000", "Frais postaux et de télécommunications"),
    ("627000", "Services bancaires et assimilés"),
    ("635100", "Impôts directs (sauf impôts sur les bénéfices)"),
    ("641000", "Rémunérations du personnel"),
    ("645000", "Charges de sécurité sociale et de prévoyance"),
    ("661100", "Intérêts des emprunts et dettes"),
    ("681100", "Dotations aux amortissements des immobilisations"),
    ("701000", "Ventes de produits finis"),
    ("706000", "Prestations de services"),
    ("707000", "Ventes de marchandises"),
    ("708500", "Ports et frais accessoires facturés"),
    ("758000", "Produits divers de gestion courante"),
    ("768000", "Autres produits financiers"),
)
CUSTOMERS_COLLECTIVE = "411000"
SUPPLIERS_COLLECTIVE = "401000"
THIRD_PARTY_PREFIX = {"customer": "411", "supplier": "401"}
BANK_ACCOUNT_PREFIX = "5121"

REVENUE_ACCOUNTS = ("706000", "707000", "701000", "708500")
EXPENSE_ACCOUNTS = (
    "601000", "604000", "606100", "606300", "606400", "607000", "611000", "613200", "615000",
    "616000", "618500", "622600", "623000", "625100", "625700", "626000",
)  # fmt: skip
VAT_COLLECTED = "445710"
VAT_DEDUCTIBLE = "445660"
VAT_DUE = "445510"
BANK_FEES = "627000"

# VAT rates (the spec's `vat_rate` codes) with their rates; FR_200 is 20 %.
VAT_RATES: dict[str, Decimal] = {
    "FR_200": Decimal("0.20"),
    "FR_100": Decimal("0.10"),
    "FR_55": Decimal("0.055"),
    "FR_21": Decimal("0.021"),
}
VAT_WEIGHTS = (("FR_200", 80), ("FR_100", 12), ("FR_55", 6), ("FR_21", 2))

# Journals: code, label, type. The spec gives `type` no enum (its one example is "payroll").
SALES_JOURNAL = ("VE", "Journal des ventes", "sale")
PURCHASES_JOURNAL = ("HA", "Journal des achats", "purchase")
MISC_JOURNAL = ("OD", "Opérations diverses", "miscellaneous")
BANK_JOURNAL_CODES = ("BQ", "BQB", "BQC", "BQD")
BANKS: tuple[tuple[str, int], ...] = (
    ("Compte courant BNP Paribas", 1001),
    ("Compte Qonto", 1002),
    ("Compte Crédit Agricole", 1003),
    ("Livret Société Générale", 1004),
)

LAST_NAMES = (
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau",
    "Simon", "Laurent", "Lefebvre", "Michel", "Garcia", "David", "Bertrand", "Roux", "Vincent", "Fournier",
    "Morel", "Girard", "André", "Mercier", "Dupont", "Lambert", "Bonnet", "François", "Martinez", "Legrand",
)  # fmt: skip
FIRST_NAMES = (
    "Camille", "Léa", "Manon", "Chloé", "Emma", "Inès", "Sarah", "Julie", "Lucas", "Hugo", "Louis", "Jules",
    "Gabriel", "Arthur", "Nathan", "Paul", "Antoine", "Claire", "Sophie", "Thomas",
)  # fmt: skip
BUSINESS_WORDS = (
    "Atelier", "Boulangerie", "Cabinet", "Garage", "Studio", "Maison", "Transports", "Menuiserie",
    "Pharmacie", "Agence", "Librairie", "Fromagerie", "Imprimerie", "Conseil", "Laboratoire", "Domaine",
)  # fmt: skip
LEGAL_FORMS = ("SARL", "SAS", "SA", "EURL", "SASU", "SCI")
SUPPLIER_NAMES = (
    "EDF", "Orange Business", "OVHcloud", "Free Pro", "La Poste", "Amazon Business", "Manutan",
    "Bureau Vallée", "TotalEnergies", "SNCF Connect", "Air France", "Allianz", "AXA France", "Qonto",
    "Google Cloud France", "Microsoft France", "Adobe Systems", "Indy", "Alan", "Swile", "Malt",
    "Welcome to the Jungle", "Leboncoin Pro", "Metro Cash & Carry", "Office Depot", "Dalkia", "Veolia",
)  # fmt: skip
STREETS = (
    "rue de la République", "avenue Jean Jaurès", "boulevard Voltaire", "rue Victor Hugo", "rue Pasteur",
    "place de la Mairie", "rue du Moulin", "chemin des Vignes", "allée des Tilleuls", "rue Nationale",
)  # fmt: skip
CITIES = (
    ("75011", "Paris"), ("69002", "Lyon"), ("13001", "Marseille"), ("31000", "Toulouse"), ("33000", "Bordeaux"),
    ("44000", "Nantes"), ("59000", "Lille"), ("67000", "Strasbourg"), ("34000", "Montpellier"), ("35000", "Rennes"),
)  # fmt: skip
PRODUCTS: tuple[tuple[str, str, str], ...] = (
    ("Journée de conseil", "day", "706000"),
    ("Heure de formation", "hour", "706000"),
    ("Audit de conformité", "piece", "706000"),
    ("Développement sur mesure", "day", "706000"),
    ("Maintenance mensuelle", "piece", "706000"),
    ("Licence logicielle annuelle", "piece", "707000"),
    ("Pack de démarrage", "piece", "707000"),
    ("Frais de livraison", "piece", "708500"),
    ("Fournitures", "piece", "701000"),
    ("Installation sur site", "piece", "706000"),
)
CATEGORY_GROUPS = ("Axe analytique", "Projets", "Établissements")
CATEGORY_LABELS = (
    "Marketing", "Ressources humaines", "Production", "Commercial", "Direction", "Informatique",
    "Projet Alpha", "Projet Bêta", "Projet Gamma", "Site de Lyon", "Site de Paris", "Site de Nantes",
    "R&D", "Logistique", "Support client", "Formation", "Export", "Événementiel", "Qualité", "Achats",
)  # fmt: skip
