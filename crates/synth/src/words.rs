//! Embedded word lists: real English/Australian-style names and places, roughly in order of
//! frequency (the first entries get the most weight), and the pieces the syllable generator
//! combines to extend the tails.
//!
//! Single-word lists are whitespace-separated; lists whose entries may contain spaces are
//! separated by commas.

/// Surnames, most common first.
pub const SURNAMES: &str = "
smith jones williams brown wilson taylor white nguyen martin anderson thompson johnson
thomas walker clarke ryan harris lee robinson kelly king campbell green wright davis
evans roberts webb hall wood jackson reid lewis mitchell murphy james phillips turner
moore young allen cooper scott mason clark hill baker ward morris edwards stewart collins
matthews morgan watson bell harrison cook parker davies miller kennedy graham murray
hughes price richardson bennett shaw ross cox mcdonald gray wilkinson hunt russell
chapman marshall palmer dixon hunter ellis hamilton fraser gibson johnston hayes butler
walsh sullivan mills holmes simpson rogers owen brooks lloyd stevens knight ferguson
burns grant pearce dawson jenkins wallace hudson black lane barnes fisher armstrong
gordon foster howard pearson george mccarthy bishop coleman lowe morrison berry blake
shepherd stanley jolly thorpe noble paterson browne rees miles fitzpatrick millar
finlay harrington lock burford herbert bradshaw chandler donaldson carbone o'brien
o'connor o'neill kelly-smith doyle byrne quinn brennan gallagher lynch maher nolan
duncan mackenzie macdonald mclean mckenzie robertson sinclair stuart watt wallis
tran le pham huynh vo chen wang li zhang liu yang huang zhao wu zhou xu sun ma zhu
singh kumar sharma shah ali ahmed hussain rossi russo ferrari esposito bianchi romano
colombo ricci marino greco bruno gallo conti costa giordano mancini rizzo lombardi
moretti barbieri fontana santoro mariani rinaldi caruso papadopoulos nikolaidis
georgiou dimitriou kowalski nowak wisniewski muller schmidt schneider fischer weber
meyer wagner becker schulz hoffmann koch richter klein wolf neumann schwarz zimmermann
braun kruger hartmann lange werner krause lehmann kohler maier hermann walter mayer
fuchs peters vandenberg dejong jansen bakker visser smit meijer devries mulder
dekker boer vos bos hendriks dijkstra kok jacobs vermeulen peeters maes willems claes
goossens wouters dubois lambert martens garcia rodriguez martinez lopez gonzalez perez
sanchez ramirez torres flores rivera gomez diaz reyes morales cruz ortiz gutierrez
chavez ramos ruiz alvarez mendoza castillo jimenez moreno romero herrera medina aguilar
vargas castro silva santos ferreira pereira oliveira costa rodrigues almeida carvalho
gomes lopes marques sousa ribeiro kim park choi jung kang cho yoon jang lim han
sato suzuki takahashi tanaka watanabe ito yamamoto nakamura kobayashi saito kato
yoshida yamada sasaki matsumoto inoue kimura hayashi shimizu yamaguchi mori abe ikeda
hashimoto ishikawa ogawa goto okada hasegawa murakami kondo ishii sakamoto endo aoki
fujii nishimura fukuda ota miura fujiwara okamoto matsuda nakagawa nakano harada
ono tamura takeuchi kaneko wada nakayama ishida ueda morita hara shibata sakai kudo
yokoyama miyazaki miyamoto uchida takagi ando taniguchi ohno maruyama imai takada
fujita kawasaki horton hooper hopkins howell hubbard humphreys hurst hutchinson irwin
jarvis jeffery jennings joyce kay keane kemp kerr kirby kirk knowles lamb lawrence
lawson leach lees little long lord lucas lyons mann marsh mclaughlin mcintyre mckay
meadows melville mercer middleton moss moran newman newton nicholls nicholson norris
norton oliver osborne parry patterson payne perkins perry pickering pope porter potter
powell pratt preston randall rawlings read rhodes rice richards riley rowe rowland
sanders saunders savage sharp sharpe skinner slater spencer stone sutton swift tucker
tyler vaughan vincent wade walters warren waters watts weaver welch wells west wheeler
whitehead wilkins willis winter wong woods wyatt yates abbott adams atkinson austin
bailey ball banks barker barrett barton bates baxter bentley booth bowen boyd bradley
briggs bryant buckley bull burton carr carter chambers cole connolly curtis dale daly
day dean dunn elliott farrell field fleming ford fox francis freeman fuller gardner
gill goodwin gough gregory griffin griffiths hale hancock hardy harper hart hawkins
heath henderson hewitt hicks hodgson holland holt hope
neumann painter salkauskas musolino satterley elphick jessup plumb weller hearn selth
tschitrpig rybak kayvas mihal spears thorpe lodge";

/// Given names, boys and girls interleaved, most common first.
pub const GIVEN_NAMES: &str = "
jack emily joshua jessica thomas chloe lachlan sophie william olivia benjamin isabella
james ruby nicholas hannah matthew georgia michael ella samuel charlotte daniel grace
jacob caitlin ryan lily mitchell emma noah mia liam madison luke amelia connor sarah
harrison zoe riley lauren kyle alexandra zachary amy joel laura harry rebecca ethan
samantha dylan stephanie oliver jasmine alexander jade lucas alyssa jordan brooke cooper
tayla isaac bianca hayden rachel jayden kate charlie holly max abbey aidan ashleigh
blake brianna callum courtney tyler eliza bailey erin jake gemma cameron imogen nathan
isabelle christopher jacqueline brodie kayla jesse maddison adam megan patrick molly
sean natalie angus paige henry phoebe logan sienna hamish tahlia tristan alice declan
ava david chelsea andrew danielle anthony elizabeth mark katherine peter lucy paul
nicole john michelle robert melissa richard kylie stephen kristy steven lisa timothy
karen jonathan jennifer jason amanda scott angela craig tracey brett leanne shane julie
wayne sharon darren kerry glenn susan dean deborah gregory wendy kevin margaret brian
helen gary patricia ian barbara graham dorothy neil joan keith jean trevor betty colin
shirley barry joyce ronald valerie kenneth beverley raymond judith geoffrey gwen bruce
irene allan marjorie donald doris frank edna george mavis arthur elsie albert ethel
leslie florence edward gladys frederick hazel harold ivy stanley lillian walter mabel
ernest myrtle alfred nancy joseph pamela charles christine francis catherine lewis
anne marcus mary mason janet hunter carol xavier diane jaxson kim archie vanessa oscar
kimberley leo monique hudson natasha flynn renee kai tegan levi tamara elijah simone
sebastian belinda finn rochelle jackson jodie toby kelly dominic carly travis hayley
troy ashley aaron brittany ben claire bradley fiona brendan heather damien joanne
jamie louise jarrod rosemary jeremy sandra joseph victoria justin naomi kieran sara
leon abigail lincoln gabrielle marco savannah martin matilda nathaniel evie owen
scarlett phillip willow reece harper rhys zara robbie aaliyah rory annabelle simon
bethany spencer caroline stuart cassandra todd deanna vincent eloise warren felicity
wesley gabriella william hollie zane indiana ahmed jemma ali kirra mohammed lara
nguyen leah minh mikayla tuan nadia wei ngoc jun thi raj priya arjun ananya marko
ana luca giulia matteo sofia nikolas eleni stefan katarina ivan elena
michaela giaan kiana elki jassim";

/// Pairs (full name, nickname) for the nickname corruption.
pub const NICKNAMES: &[(&str, &str)] = &[
    ("william", "bill"),
    ("william", "will"),
    ("robert", "bob"),
    ("robert", "rob"),
    ("richard", "rick"),
    ("richard", "dick"),
    ("james", "jim"),
    ("james", "jimmy"),
    ("john", "johnny"),
    ("michael", "mike"),
    ("michael", "mick"),
    ("christopher", "chris"),
    ("matthew", "matt"),
    ("nicholas", "nick"),
    ("benjamin", "ben"),
    ("daniel", "dan"),
    ("daniel", "danny"),
    ("thomas", "tom"),
    ("thomas", "tommy"),
    ("joseph", "joe"),
    ("samuel", "sam"),
    ("alexander", "alex"),
    ("andrew", "andy"),
    ("andrew", "drew"),
    ("anthony", "tony"),
    ("edward", "ted"),
    ("edward", "eddie"),
    ("jonathan", "jon"),
    ("joshua", "josh"),
    ("zachary", "zac"),
    ("timothy", "tim"),
    ("patrick", "pat"),
    ("peter", "pete"),
    ("stephen", "steve"),
    ("steven", "steve"),
    ("david", "dave"),
    ("jacob", "jake"),
    ("nathan", "nate"),
    ("lachlan", "lachie"),
    ("harrison", "harry"),
    ("cameron", "cam"),
    ("gregory", "greg"),
    ("kenneth", "ken"),
    ("ronald", "ron"),
    ("raymond", "ray"),
    ("geoffrey", "geoff"),
    ("frederick", "fred"),
    ("francis", "frank"),
    ("elizabeth", "liz"),
    ("elizabeth", "beth"),
    ("katherine", "kate"),
    ("katherine", "kathy"),
    ("catherine", "cathy"),
    ("margaret", "maggie"),
    ("margaret", "peggy"),
    ("jennifer", "jenny"),
    ("jessica", "jess"),
    ("rebecca", "bec"),
    ("rebecca", "becky"),
    ("samantha", "sam"),
    ("alexandra", "alex"),
    ("victoria", "vicky"),
    ("isabella", "bella"),
    ("isabella", "izzy"),
    ("charlotte", "lottie"),
    ("olivia", "liv"),
    ("abigail", "abby"),
    ("madison", "maddy"),
    ("stephanie", "steph"),
    ("christine", "chris"),
    ("patricia", "trish"),
    ("susan", "sue"),
    ("deborah", "deb"),
    ("kimberley", "kim"),
    ("natasha", "tash"),
    ("amanda", "mandy"),
    ("gabrielle", "gabby"),
    ("jacqueline", "jackie"),
    ("pamela", "pam"),
    ("beverley", "bev"),
    ("valerie", "val"),
    ("dorothy", "dot"),
    ("barbara", "barb"),
    ("caitlin", "cait"),
    ("alyssa", "ally"),
    ("emily", "em"),
];

/// Suburbs of New South Wales (comma-separated).
pub const SUBURBS_NSW: &str = "
sydney, parramatta, blacktown, penrith, liverpool, campbelltown, bankstown, chatswood,
hornsby, ryde, burwood, strathfield, bondi, bondi junction, manly, dee why, mona vale,
cronulla, sutherland, hurstville, kogarah, rockdale, marrickville, newtown, glebe, balmain,
leichhardt, ashfield, auburn, lidcombe, granville, merrylands, fairfield, cabramatta,
castle hill, baulkham hills, kellyville, rouse hill, epping, carlingford, eastwood,
homebush, concord, drummoyne, mosman, neutral bay, north sydney, lane cove, gordon, pymble,
wahroonga, turramurra, st ives, frenchs forest, brookvale, narrabeen, avalon, randwick,
maroubra, coogee, kensington, mascot, botany, engadine, menai, miranda, caringbah, gymea,
camden, narellan, picton, windsor, richmond, st marys, mount druitt, quakers hill,
riverstone, winston hills, toongabbie, seven hills, wentworthville, newcastle, maitland,
cessnock, kurri kurri, raymond terrace, charlestown, belmont, swansea, the entrance,
gosford, wyong, terrigal, woy woy, wollongong, dapto, shellharbour, kiama, nowra,
ulladulla, batemans bay, moruya, bega, merimbula, eden, goulburn, queanbeyan, yass, cooma,
wagga wagga, albury, griffith, leeton, narrandera, hay, deniliquin, young, cowra, orange,
bathurst, lithgow, katoomba, blaxland, springwood, mudgee, dubbo, parkes, forbes,
narromine, wellington, gunnedah, tamworth, armidale, inverell, moree, narrabri,
glen innes, tenterfield, grafton, south grafton, lismore, ballina, byron bay, mullumbimby,
casino, kyogle, tweed heads, murwillumbah, coffs harbour, port macquarie, kempsey, taree,
forster, gloucester, dungog, muswellbrook, singleton, scone, broken hill, cobar, bourke,
ganmain, junee, cootamundra, temora, tumut, gundagai, south west rocks, yamba,
centennial park, mount hutton, cardiff, winmalee, glenmore park, oakville";

/// Suburbs of Victoria.
pub const SUBURBS_VIC: &str = "
melbourne, frankston, dandenong, box hill, ringwood, doncaster, camberwell, hawthorn, kew,
st kilda, brighton, sandringham, cheltenham, mentone, mordialloc, moorabbin, bentleigh,
caulfield, malvern, toorak, prahran, south yarra, south melbourne, port melbourne,
footscray, sunshine, st albans, werribee, hoppers crossing, point cook, altona,
williamstown, essendon, coburg, brunswick, preston, reservoir, thornbury, northcote,
fitzroy, carlton, collingwood, heidelberg, greensborough, eltham, bundoora, craigieburn,
broadmeadows, glenroy, pascoe vale, sunbury, melton, bacchus marsh, geelong, lara,
torquay, ocean grove, colac, warrnambool, portland, hamilton, horsham, ararat, stawell,
ballarat, creswick, daylesford, castlemaine, bendigo, echuca, kyabram, shepparton,
mooroopna, benalla, wangaratta, wodonga, mansfield, seymour, kilmore, wallan, traralgon,
morwell, moe, warragul, sale, bairnsdale, lakes entrance, leongatha, wonthaggi, cowes,
pakenham, berwick, narre warren, cranbourne, hastings, mornington, rosebud, mount eliza,
carnegie, oakleigh, clayton, glen waverley, mount waverley, highett, beaumaris,
chelsea heights, mirboo north, merricks north, rushworth, mildura, swan hill, kerang,
nyah west, ormond, fish creek, thornbury east, st huberts island";

/// Suburbs of Queensland.
pub const SUBURBS_QLD: &str = "
toowoomba, bundaberg, brisbane, southport, surfers paradise, broadbeach, burleigh heads,
coolangatta, robina, nerang, beenleigh, loganlea, ipswich, goodna, redcliffe,
caboolture, morayfield, strathpine, chermside, aspley, indooroopilly, toowong, kenmore,
the gap, ashgrove, paddington, new farm, fortitude valley, woolloongabba, carindale,
capalaba, cleveland, wynnum, sunnybank, macgregor, richlands, inala, forest lake,
maroochydore, caloundra, nambour, noosa heads, gympie, maryborough, hervey bay,
gladstone, rockhampton, yeppoon, emerald, mackay, bowen, proserpine, airlie beach,
townsville, mundingburra, ayr, ingham, cairns, innisfail, atherton, mareeba,
port douglas, mount isa, longreach, charleville, roma, dalby, warwick, stanthorpe,
kingaroy, gatton, laidley, moura, woodgate, burnett heads, cambooya, brooloo,
eastern heights, birkdale, coomera, ormeau, pimpama, springfield lakes";

/// Suburbs of Western Australia.
pub const SUBURBS_WA: &str = "
perth, fremantle, joondalup, rockingham, mandurah, armadale, midland, cannington, morley,
scarborough, cottesloe, subiaco, nedlands, claremont, applecross, willetton, thornlie,
gosnells, kelmscott, baldivis, ellenbrook, wanneroo, balga, mirrabooka, bunbury,
busselton, margaret river, albany, esperance, kalgoorlie, boulder, geraldton, carnarvon,
port hedland, karratha, broome, kununurra, northam, narrogin, collie, manjimup,
northwood, inneston";

/// Suburbs of South Australia.
pub const SUBURBS_SA: &str = "
adelaide, glenelg, norwood, unley, prospect, salisbury, elizabeth, modbury,
tea tree gully, golden grove, marion, morphett vale, noarlunga, christies beach, seaford,
port adelaide, west lakes, woodville, henley beach, goodwood, woodcroft, oaklands park,
mount barker, murray bridge, victor harbor, gawler, port augusta, port pirie, whyalla,
port lincoln, mount gambier, naracoorte, renmark, berri, loxton, kadina, wallaroo,
clare, yankalilla, shorewell park";

/// Suburbs of Tasmania.
pub const SUBURBS_TAS: &str = "
hobart, launceston, devonport, burnie, ulverstone, kingston, glenorchy, moonah,
sandy bay, new town, bellerive, rosny, howrah, sorell, new norfolk, huonville,
george town, scottsdale, st helens, smithton, wynyard, queenstown, dover";

/// Suburbs of the Australian Capital Territory.
pub const SUBURBS_ACT: &str = "
canberra, belconnen, tuggeranong, woden, weston creek, gungahlin, kambah, dickson,
braddon, turner, reid, ainslie, o'connor, lyneham, bruce, higgins, holt, scullin,
page, kaleen, giralang, evatt, spence, charnwood, curtin, garran, chifley, pearce,
torrens, farrer, wanniassa, fadden, gowrie, calwell, theodore, conder, banks";

/// Suburbs of the Northern Territory.
pub const SUBURBS_NT: &str = "
darwin, palmerston, casuarina, nightcliff, alice springs, katherine, tennant creek,
nhulunbuy, jabiru, humpty doo, howard springs";

/// Words street names are made of besides surnames.
pub const STREET_WORDS: &str = "
high main church station railway park king queen george victoria william elizabeth albert
edward princes pacific hume bridge mill river beach ocean hill valley ridge forest lake
bay creek spring green view marine wattle acacia banksia pine oak elm cedar grevillea
waratah boronia jacaranda kurrajong myrtle laurel maple willow poplar orchard
cemetery school college hospital market wharf harbour jetty quarry dairy stock
namatjira barangaroo willyama currong honyong rapanea gara alabaster halifax augusta
melrose golden forbes stanley pinkerton salkauskas macquoid light spring range hawdon
aspinall tenison-woods newman morris hugh mckay hazel smith barr-smith la perouse
mac george totterdell badimara paul coe crisp somerset berne benjamin snowden";

/// Street types with weights (per mille; FEBRL4's streets are Canberra-like: many crescents,
/// places and circuits).
pub const STREET_TYPES: &[(&str, u32)] = &[
    ("street", 410),
    ("crescent", 180),
    ("place", 170),
    ("circuit", 80),
    ("avenue", 40),
    ("close", 38),
    ("drive", 23),
    ("court", 14),
    ("road", 12),
    ("way", 5),
    ("garden", 4),
    ("terrace", 3),
    ("parade", 3),
    ("lane", 3),
    ("grove", 3),
    ("circle", 2),
    ("retreat", 2),
    ("boulevard", 1),
    ("highway", 1),
];

/// Abbreviations of address tokens (long, short).
pub const ABBREVIATIONS: &[(&str, &str)] = &[
    ("street", "st"),
    ("road", "rd"),
    ("avenue", "ave"),
    ("place", "pl"),
    ("crescent", "cres"),
    ("circuit", "cct"),
    ("close", "cl"),
    ("drive", "dr"),
    ("court", "ct"),
    ("parade", "pde"),
    ("terrace", "tce"),
    ("lane", "ln"),
    ("way", "wy"),
    ("grove", "gr"),
    ("boulevard", "bvd"),
    ("highway", "hwy"),
    ("village", "vlge"),
    ("retirement", "retrmnt"),
    ("estate", "est"),
    ("building", "bldg"),
    ("section", "sec"),
    ("location", "locn"),
    ("mount", "mt"),
    ("saint", "st"),
    ("north", "nth"),
    ("south", "sth"),
];

/// Property and building names for `address_2` (comma-separated), most common first.
pub const ADDRESS_2_NAMES: &str = "
rowethorpe, brentwood vlge, rosetta village, the willows, berkeley vlge, st francis vlge,
mayflower retrmnt vlge, manor house, pine hill, the gums, the meadows, killuke, craiglea,
old green hill, lumeah homes, eight mile, scottsdale, cherrybank, heritage est, tiverton,
lockwood, kehlhof, marella, eriswell park, sherwood, morris towers, corridella,
rosemeade, tantallon, mariner views, creswick, wearmouth, glen mia, mayo, ruglen,
plumpton park, brinjarry, parraweena, glen ayre, yarrandoo, hobbit hole, burnside,
glendower, gungarlin, wooloondool farm, colleton, brentwood, inveraray, bridle bit,
inishmore, tesbury, leumeah, crestwood, yarras est, longplain, weddinview, gordonvale,
littledale, evergreen, tintagel, kilburnie, catumbel lodge, stoney creek, gwandalan,
tulliallan, marretah, pangani, melima, lochadair, springetts arcade, iron shoe lodge,
peppercorn lodge, demountable bldg, newman medical centre, calala farm, ethnam farm,
the points holsteins, larnach, booroondoo north, gilgowie jacks, afflexian, llangollen,
salmaldo caravan park, edinburgh caravan, alexandra racecourse, lucky corner,
dodonaea wing, the mall springwood, noosa village shopping centre, tathra river est,
brindabella specialist centre, australia fair medical west centre, sussex farm,
hattah-kulkyne, nestor, bulliac street, glenmore, inverness, bellevue, fairview,
riverview, hillcrest, sunnyside, greenacres, woodlands, oakdale, elm grove, the oaks,
the pines, the elms, rose cottage, ivy cottage, kangaroo flat, wallaby creek, emu plains,
koala park, banksia lodge, wattle grove, bottlebrush, ironbark, stringybark, red gum,
blue gum, the cedars, acacia court, jacaranda gardens, heritage gardens, harbour view,
ocean view, bay view, sea breeze, sandy point, rocky point, windy ridge, eagle rest";

/// Suffixes that turn a generated root into an `address_2` property name.
pub const ADDRESS_2_SUFFIXES: &[&str] = &[
    "lodge",
    "village",
    "vlge",
    "farm",
    "house",
    "park",
    "manor",
    "gardens",
    "court",
    "est",
    "retirement village",
    "homestead",
    "station",
    "centre",
    "arcade",
    "flats",
    "towers",
    "downs",
    "caravan park",
    "medical centre",
];

/// Prefixes of numbered `address_2` values ("unit 4", "villa 2", "locn 2192").
pub const ADDRESS_2_NUMBERED: &[&str] = &[
    "unit", "flat", "villa", "apt", "locn", "sec", "lot", "rmb", "suite", "level",
];

/// Consonant clusters a syllable may start with (for splitting real names into syllables).
pub const ONSETS: &[&str] = &[
    "b", "bl", "br", "c", "ch", "chr", "cl", "cr", "d", "dr", "f", "fl", "fr", "g", "gl", "gr",
    "h", "j", "k", "kn", "l", "m", "n", "p", "ph", "pl", "pr", "qu", "r", "s", "sc", "sch", "sh",
    "sk", "sl", "sm", "sn", "sp", "st", "str", "sw", "t", "th", "tr", "tw", "v", "w", "wh", "wr",
    "x", "z",
];

/// Endings of generated suburb names (a leading space makes a second word).
pub const SUBURB_ENDINGS: &[&str] = &[
    "",
    "",
    "",
    "vale",
    "ville",
    "ton",
    "field",
    "wood",
    "dale",
    "brook",
    "hurst",
    "leigh",
    "more",
    "bank",
    "ford",
    "ridge",
    "bury",
    "wick",
    " downs",
    " park",
    " heights",
    " hills",
    " creek",
    " valley",
    " beach",
    " point",
    " north",
    " south",
    " east",
    " west",
    " flat",
    " plains",
    " springs",
    " junction",
];

/// Prefixes of generated suburb names.
pub const SUBURB_PREFIXES: &[&str] = &[
    "mount ", "port ", "glen ", "lake ", "st ", "upper ", "north ",
];

/// First consonants of Aboriginal-style place names (wagga, mullumbimby, booroondoo).
pub const PLACE_INITIALS: &[&str] = &[
    "b", "d", "g", "k", "m", "n", "w", "y", "j", "t", "p", "c", "b", "w", "m", "k",
];

/// Inner consonants of Aboriginal-style place names.
pub const PLACE_CONSONANTS: &[&str] = &[
    "b", "d", "g", "k", "l", "m", "n", "r", "w", "y", "ng", "rr", "ll", "mb", "nd", "nj", "mm",
    "rb", "lb", "nd", "r", "l", "n",
];

/// Vowels of Aboriginal-style place names.
pub const PLACE_VOWELS: &[&str] = &[
    "a", "i", "o", "u", "e", "a", "oo", "ee", "u", "i", "a", "oo",
];
